"""Canonical weights in the ONNX operator layout, seeded init, and .npz files with a digest.

Per layer l, with D directions, G gates, H hidden units and I_l inputs to the layer:
    l{l}.W  [D, G*H, I_l]    l{l}.R  [D, G*H, H]    l{l}.Wb [D, G*H]    l{l}.Rb [D, G*H]
    l{l}.P  [D, 3*H]         (an LSTM with peepholes only, ONNX's order i, o, f)
ONNX gate orders: LSTM i, o, f, c; GRU z, r, h. The optional head:
    head.W  [units, D*H]     head.b  [units]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from harness.atomic import atomic_open
from harness.model.arrays import Arrays
from harness.model.spec import ModelSpec, SpecError

SPEC_KEY = "__spec__"
DIGEST_KEY = "__sha256__"


class WeightsError(ValueError):
    """Weights that do not fit their spec, or a weights file that cannot be trusted."""


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every canonical array's name and shape, in the canonical order."""
    D, GH, H = spec.num_directions, spec.gates * spec.hidden_size, spec.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(spec.num_layers):
        shapes[f"l{layer}.W"] = (D, GH, spec.layer_input_size(layer))
        shapes[f"l{layer}.R"] = (D, GH, H)
        shapes[f"l{layer}.Wb"] = (D, GH)
        shapes[f"l{layer}.Rb"] = (D, GH)
        if spec.peepholes:
            shapes[f"l{layer}.P"] = (D, 3 * H)
    if spec.head is not None:
        shapes["head.W"] = (spec.head.units, D * H)
        shapes["head.b"] = (spec.head.units,)
    return shapes


@dataclasses.dataclass(frozen=True, eq=False)
class CanonicalWeights(Mapping):
    """An immutable name -> array mapping checked against its spec."""

    spec: ModelSpec
    arrays: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        expected = expected_shapes(self.spec)
        missing = [n for n in expected if n not in self.arrays]
        extra = [n for n in self.arrays if n not in expected]
        if missing or extra:
            what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
            raise WeightsError(f"weights do not match the spec: {what}; expected {list(expected)}")
        frozen = {}
        for name, shape in expected.items():
            array = np.asarray(self.arrays[name])
            if array.shape != shape:
                raise WeightsError(
                    f"weights do not match the spec: {name} has shape {array.shape}, "
                    f"the spec needs {shape}"
                )
            if array.dtype != np.dtype(self.spec.dtype):
                raise WeightsError(
                    f"weights do not match the spec: {name} has dtype {array.dtype}, "
                    f"the spec needs {self.spec.dtype}"
                )
            array = np.array(array, copy=True, order="C")
            array.flags.writeable = False
            frozen[name] = array
        object.__setattr__(self, "arrays", frozen)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    def layer(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(W, R, Wb, Rb) of one layer, each with the direction axis first."""
        W, R, Wb, Rb = (self.arrays[f"l{layer}.{k}"] for k in ("W", "R", "Wb", "Rb"))
        return W, R, Wb, Rb

    def peepholes(self, layer: int) -> np.ndarray | None:
        """P [D, 3H] of one layer (i, o, f), None without peepholes."""
        return self.arrays.get(f"l{layer}.P")

    def digest(self) -> str:
        """sha256 over names, dtypes, shapes and little-endian bytes, in canonical order."""
        return digest_arrays(self.arrays)

    def astype(self, dtype: str) -> CanonicalWeights:
        spec = self.spec.replace(dtype=dtype)
        return CanonicalWeights(spec, {k: v.astype(dtype) for k, v in self.arrays.items()})

    def replace(self, **arrays: np.ndarray) -> CanonicalWeights:
        return CanonicalWeights(self.spec, {**self.arrays, **arrays})


def float32_exact(array: np.ndarray) -> np.ndarray:
    """float64 values that float32 holds exactly."""
    return array.astype(np.float32).astype(np.float64)


def digest_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and little-endian bytes, in the mapping's order."""
    h = hashlib.sha256()
    for name, array in arrays.items():
        array = np.asarray(array)
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}|{little.dtype.str}|{array.shape}|".encode())
        h.update(np.ascontiguousarray(little).tobytes())
    return h.hexdigest()


def init_weights(spec: ModelSpec, seed: int = 0) -> CanonicalWeights:
    """Uniform(-1/sqrt(fan), 1/sqrt(fan)) as PyTorch does; drawn in float64 by PCG64 in canonical
    order and then cast, so the same seed gives bit-identical weights on every machine."""
    rng = np.random.Generator(np.random.PCG64(seed))
    arrays = {}
    for name, shape in expected_shapes(spec).items():
        fan = shape[-1] if name == "head.W" else spec.hidden_size
        if name == "head.b":
            fan = spec.num_directions * spec.hidden_size
        bound = 1.0 / np.sqrt(fan)
        arrays[name] = rng.uniform(-bound, bound, size=shape).astype(spec.dtype)
    return CanonicalWeights(spec, arrays)


def save_weights(weights: CanonicalWeights, path: str | Path) -> str:
    """Write spec, arrays and digest to one .npz, atomically; returns the digest."""
    digest = weights.digest()
    payload: Arrays = dict(weights.arrays)  # numbers and two strings: nothing to pickle
    payload[SPEC_KEY] = np.array(weights.spec.to_json())
    payload[DIGEST_KEY] = np.array(digest)
    with atomic_open(path) as handle:
        np.savez(handle, **payload)
    return digest


def load_weights(path: str | Path, spec: ModelSpec | None = None) -> CanonicalWeights:
    """Read a .npz written by save_weights; verify its digest and, if given, that it fits `spec`."""
    from harness.files.archive import check_npz  # a user's file: sizes before np.load

    path = Path(path)
    try:
        check_npz(path, f"weights file {path}")
        with np.load(path, allow_pickle=False) as npz:
            contents = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"weights file {path} is not a readable .npz: {exc}") from None
    for key in (SPEC_KEY, DIGEST_KEY):
        if key not in contents:
            raise WeightsError(f"weights file {path} has no {key} entry: not written by rnnbench")
    try:
        stored_spec = ModelSpec.from_dict(json.loads(str(contents.pop(SPEC_KEY))))
    except (json.JSONDecodeError, SpecError) as exc:
        raise WeightsError(f"weights file {path} holds an invalid spec: {exc}") from None
    stored_digest = str(contents.pop(DIGEST_KEY))
    target = spec if spec is not None else stored_spec
    try:
        weights = CanonicalWeights(target, contents)
    except WeightsError as exc:
        raise WeightsError(f"weights file {path}: {exc}") from None
    if weights.digest() != stored_digest:
        raise WeightsError(
            f"weights file {path} is corrupt: sha256 {weights.digest()[:12]}... "
            f"differs from the stored {stored_digest[:12]}..."
        )
    return weights
