"""ModelSpec: the frozen, validated description of one recurrent model."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from pathlib import Path
from typing import Any

from harness.json_values import JsonObject

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class SpecError(ValueError):
    """An invalid model specification; the message names field, value and what is allowed."""


class Cell(str, enum.Enum):
    RNN = "rnn"  # Elman SimpleRNN with tanh
    LSTM = "lstm"
    GRU = "gru"  # linear_before_reset=1 form unless the spec says otherwise (see VARIANTS)

    @property
    def gates(self) -> int:
        return _GATES[self]


_GATES = {Cell.RNN: 1, Cell.LSTM: 4, Cell.GRU: 3}
DTYPES = ("float32", "float64")
HEAD_ACTIVATIONS = ("none", "softmax")
# The ONNX operator's forms of a cell beyond the canonical one, each a ModelSpec field whose
# default is the canonical cell: name -> (the cells it applies to, a value other than the
# default). A backend declares which of them it computes (harness/registry.py), and
# tests/test_backends.py runs each on every backend that claims it: a claim that does not
# compute fails there, never as a parity error later.
VARIANT_FORMS: dict[str, tuple[tuple[str, ...], Any]] = {
    "linear_before_reset": (("gru",), False),
    "peepholes": (("lstm",), True),
    "input_forget": (("lstm",), True),
    "clip": (("rnn", "lstm", "gru"), 0.5),
}
VARIANTS = tuple(VARIANT_FORMS)


def _fail(field: str, value: Any, allowed: str) -> SpecError:
    return SpecError(f"ModelSpec.{field} = {value!r} is invalid: allowed {allowed}")


def _check_int(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(field, value, f"an integer >= {minimum}")


def _check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(field, value, "true or false")


@dataclasses.dataclass(frozen=True)
class Head:
    """Optional dense layer on the last layer's final state (Keras `Dense(units, activation)`)."""

    units: int
    activation: str = "none"

    def __post_init__(self) -> None:
        _check_int("head.units", self.units, 1)
        if self.activation not in HEAD_ACTIVATIONS:
            raise _fail("head.activation", self.activation, " | ".join(HEAD_ACTIVATIONS))


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    cell: Cell
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    head: Head | None = None
    dtype: str = "float32"
    # GRU only: False is ONNX's default GRU, h~ = tanh(W x + R (r * h) + b) (Keras
    # reset_after=False); True is the canonical r * (R h + Rb) form (PyTorch, cuDNN).
    linear_before_reset: bool = True
    peepholes: bool = False  # LSTM only: weights l{l}.P [D, 3H] in ONNX's order i, o, f
    input_forget: bool = False  # LSTM only: the forget gate is 1 - i (ONNX input_forget=1)
    clip: float | None = None  # every activation's input clipped to [-clip, clip]

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "cell", Cell(self.cell))
        except ValueError:
            raise _fail("cell", self.cell, " | ".join(c.value for c in Cell)) from None
        _check_int("input_size", self.input_size, 1)
        _check_int("hidden_size", self.hidden_size, 1)
        _check_int("num_layers", self.num_layers, 1)
        _check_bool("bidirectional", self.bidirectional)
        _check_bool("batch_first", self.batch_first)
        if isinstance(self.head, dict):
            object.__setattr__(self, "head", _build(Head, self.head, "head."))
        elif self.head is not None and not isinstance(self.head, Head):
            raise _fail("head", self.head, "a table with units and activation, or absent")
        if self.dtype not in DTYPES:
            raise _fail("dtype", self.dtype, " | ".join(DTYPES))
        self._check_variants()

    def _check_variants(self) -> None:
        for name in ("linear_before_reset", "peepholes", "input_forget"):
            _check_bool(name, getattr(self, name))
        if not self.linear_before_reset and self.cell is not Cell.GRU:
            raise _fail("linear_before_reset", False, "false only for a GRU")
        for name in ("peepholes", "input_forget"):
            if getattr(self, name) and self.cell is not Cell.LSTM:
                raise _fail(name, True, "true only for an LSTM")
        clip = self.clip
        if clip is not None:
            if isinstance(clip, bool) or not isinstance(clip, int | float):
                raise _fail("clip", clip, "a number > 0, or absent")
            if not 0 < clip < float("inf"):
                raise _fail("clip", clip, "a finite number > 0, or absent")
            object.__setattr__(self, "clip", float(clip))

    @property
    def variants(self) -> tuple[str, ...]:
        """The VARIANTS this model uses (empty for the canonical cell)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in VARIANTS}
        return tuple(name for name in VARIANTS if getattr(self, name) != defaults[name])

    def describe_variants(self, only=None) -> str:
        """The variants (or those of them in `only`) as ONNX attributes and inputs would say
        them ("" when canonical)."""
        words = {
            "linear_before_reset": "linear_before_reset=0",
            "peepholes": "peepholes (input P)",
            "input_forget": "input_forget=1",
            "clip": f"clip={self.clip:g}" if self.clip else "",
        }
        return ", ".join(words[n] for n in self.variants if only is None or n in only)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def gates(self) -> int:
        return self.cell.gates

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.hidden_size

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> JsonObject:
        """Every field, except a missing head and the variants left at the canonical cell's
        defaults (so that a canonical model reads as it did before variants existed)."""
        out = dataclasses.asdict(self)
        out["cell"] = self.cell.value
        if self.head is None:
            del out["head"]
        for name in VARIANTS:
            if name not in self.variants:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: JsonObject) -> ModelSpec:
        if not isinstance(data, dict):
            raise SpecError(f"a model spec must be a table of fields, got {type(data).__name__}")
        return _build(cls, data, "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_toml(self) -> str:
        lines = ["[model]"]
        head = None
        for key, value in self.to_dict().items():
            if key == "head":
                head = value
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        if head is not None:
            lines.append("\n[model.head]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in head.items()]
        return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class MinGRUSpec:
    """minGRU (backends/mingru.py), the parallel-in-time contrast model: one direction, no head,
    weights l{l}.W [2H, I_l] and l{l}.b [2H]."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    dtype: str = "float32"
    cell = "mingru"
    bidirectional = False
    head = None
    num_directions = 1
    variants = ()

    def __post_init__(self) -> None:
        _check_int("input_size", self.input_size, 1)
        _check_int("hidden_size", self.hidden_size, 1)
        _check_int("num_layers", self.num_layers, 1)
        if self.dtype not in DTYPES:
            raise _fail("dtype", self.dtype, " | ".join(DTYPES))

    def replace(self, **changes: Any) -> MinGRUSpec:
        return dataclasses.replace(self, **changes)


def _build(cls: type, data: JsonObject, prefix: str) -> Any:
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"unknown field {prefix}{unknown[0]!r}: allowed {', '.join(fields)}")
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise SpecError(f"missing field {prefix}{missing[0]!r}: required {', '.join(required)}")
    return cls(**data)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def load_spec(path: str | Path) -> ModelSpec:
    """Read a spec from .toml (a [model] table, or top-level fields) or .json."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise SpecError(f"spec file {path} has suffix {path.suffix!r}: allowed .toml, .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"spec file {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if isinstance(data, dict) and "model" in data:
        data = data["model"]
    return ModelSpec.from_dict(data)


def save_spec(spec: ModelSpec, path: str | Path) -> None:
    from harness.atomic import write_text_atomic

    path = Path(path)
    if path.suffix == ".toml":
        write_text_atomic(path, spec.to_toml())
    elif path.suffix == ".json":
        write_text_atomic(path, json.dumps({"model": spec.to_dict()}, indent=2) + "\n")
    else:
        raise SpecError(f"spec file {path} has suffix {path.suffix!r}: allowed .toml, .json")
