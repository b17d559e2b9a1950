"""The parity matrix: cases x backends, each backend's outputs and gradients against the NumPy
float64 reference. Weights, inputs and cotangents are drawn in float32, so that the reference
sees exactly the numbers a float32 backend sees and any difference is the backend's arithmetic.
"""

from __future__ import annotations

import dataclasses
import itertools
import traceback
from typing import Any

import numpy as np

from backends import numpy_ref
from harness import registry
from harness.model.outputs import Outputs
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights, init_weights, load_weights
from harness.parity.checks import Comparison, compare_all

DEFAULT_BACKENDS = (
    "numpy",
    "torch-cpu",
    "torch-cuda",
    "tf-eager",
    "tf-function",
    "tf-xla",
    "ort-direct-cpu",
    "ort-torchscript-cpu",
    "ort-dynamo-cpu",
    "ort-tf2onnx-cpu",
    "ort-direct-cuda",
    "ort-torchscript-cuda",
    "ort-dynamo-cuda",
    "ort-tf2onnx-cuda",
)


@dataclasses.dataclass(frozen=True)
class ParityCase:
    spec: ModelSpec  # its dtype is the dtype the backends run in
    T: int = 20
    B: int = 4
    with_lens: bool = False
    seed: int = 0
    weights_file: str | None = None  # canonical .npz; seeded init when None

    @property
    def id(self) -> str:
        s = self.spec
        parts = [
            s.cell.value,
            f"L{s.num_layers}",
            "bi" if s.bidirectional else "uni",
            "lens" if self.with_lens else "full",
            s.dtype,
        ]
        return "-".join(parts)


def default_cases(
    cells=("rnn", "lstm", "gru"), dtypes=("float32", "float64"), input_size=5, hidden_size=16
) -> list[ParityCase]:
    """cells x {1, 2 layers} x {uni, bidirectional} x {with, without sequence_lens} x dtypes;
    the 2-layer models carry a softmax head."""
    cases = []
    for cell, layers, bi, lens, dtype in itertools.product(
        cells, (1, 2), (False, True), (False, True), dtypes
    ):
        head = Head(3, "softmax") if layers == 2 else None
        spec = ModelSpec(
            cell,
            input_size,
            hidden_size,
            num_layers=layers,
            bidirectional=bi,
            head=head,
            dtype=dtype,
        )
        cases.append(ParityCase(spec, with_lens=lens))
    return cases


def case_data(case: ParityCase) -> tuple[CanonicalWeights, dict[str, Any]]:
    """float32-representable weights and inputs, in float64 (the reference's dtype)."""
    spec64 = case.spec.replace(dtype="float64")
    spec32 = spec64.replace(dtype="float32")
    if case.weights_file:
        stored = load_weights(case.weights_file)
        weights32 = CanonicalWeights(spec32, dict(stored.astype("float32")))
    else:
        weights32 = init_weights(spec32, seed=case.seed)
    weights = weights32.astype("float64")
    rng = np.random.default_rng(case.seed + 1)
    shape_x = (
        (case.B, case.T, spec64.input_size)
        if spec64.batch_first
        else (case.T, case.B, spec64.input_size)
    )
    states = (spec64.num_layers * spec64.num_directions, case.B, spec64.hidden_size)
    inputs = {
        "x": float32_exact(rng.standard_normal(shape_x)),
        "seq_lens": None,
        "h0": float32_exact(0.5 * rng.standard_normal(states)),
        "c0": None,
    }
    if spec64.cell is Cell.LSTM:
        inputs["c0"] = float32_exact(0.5 * rng.standard_normal(states))
    if case.with_lens:
        lens = rng.integers(1, case.T + 1, size=case.B)
        lens[0] = case.T  # one full-length sample, so T is not inferred from the lengths
        inputs["seq_lens"] = lens.astype(np.int64)
    return weights, inputs


def cotangents_for(outputs: Outputs, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 2)
    return {k: float32_exact(rng.standard_normal(v.shape)) for k, v in outputs.as_dict().items()}


def float32_exact(array: np.ndarray) -> np.ndarray:
    """float64 values that float32 holds exactly."""
    return array.astype(np.float32).astype(np.float64)


@dataclasses.dataclass
class BackendResult:
    backend: str
    case: str
    status: str  # passed | failed | skipped | error
    reason: str = ""
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    audit: dict | None = None  # the export-form audit, for ONNX backends

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["comparisons"] = [c.as_dict() for c in self.comparisons]
        return out


def reference_results(case: ParityCase):
    weights64, inputs = case_data(case)
    spec64 = case.spec.replace(dtype="float64")
    params = dict(weights64)
    call = {k: inputs[k] for k in ("seq_lens", "h0", "c0")}
    outputs, tape = numpy_ref.forward_with_tape(spec64, params, inputs["x"], **call)
    cot = cotangents_for(outputs, case.seed)
    grads = numpy_ref.backward(params, tape, **{f"d{k}": v for k, v in cot.items()})
    return weights64, inputs, outputs.as_dict(), cot, grads


def run_case(case: ParityCase, backend_names, reference=None) -> list[BackendResult]:
    weights64, inputs, ref_out, cot, ref_grads = reference or reference_results(case)
    dtype = case.spec.dtype
    weights = weights64.astype(dtype)
    cast = {k: None if v is None or k == "seq_lens" else v.astype(dtype) for k, v in inputs.items()}
    cast["seq_lens"] = inputs["seq_lens"]
    cot_cast = {k: v.astype(dtype) for k, v in cot.items()}
    results = []
    for name in backend_names:
        reason = registry.unavailable_reason(name)
        if reason:
            results.append(BackendResult(name, case.id, "skipped", reason))
            continue
        results.append(_run_backend(name, case, weights, cast, cot_cast, ref_out, ref_grads))
    return results


def _run_backend(name, case, weights, cast, cot_cast, ref_out, ref_grads) -> BackendResult:
    """Forward, then gradients; a backend without gradients (ONNX Runtime) is judged on its
    forward alone and says so."""
    dtype, note = case.spec.dtype, ""
    x, rest = cast["x"], {k: cast[k] for k in ("seq_lens", "h0", "c0")}
    try:
        prepared = registry.get_backend(name).build(weights.spec, weights)
        comparisons = compare_all(ref_out, prepared.forward(x, **rest).as_dict(), dtype)
        try:
            grads = prepared.grad(x, cot_cast, **rest)
            comparisons += compare_all(ref_grads, grads, dtype, prefix="grad:")
        except NotSupported as exc:
            note = f"forward only: {exc}"
    except NotSupported as exc:
        return BackendResult(name, case.id, "skipped", str(exc))
    except Exception as exc:  # a backend that breaks is reported, and the matrix goes on
        return BackendResult(name, case.id, "error", describe_error(exc))
    status = "passed" if all(c.passed for c in comparisons) else "failed"
    result = BackendResult(name, case.id, status, note, comparisons)
    result.audit = getattr(prepared, "audit", None)
    return result


def describe_error(exc: BaseException) -> str:
    """One line: the exception, its first line of message, and where it was raised."""
    last = traceback.extract_tb(exc.__traceback__)[-1]
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first_line} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
