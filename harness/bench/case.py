"""A benchmark case: a model (a ModelSpec, or minGRU's) plus batch, steps, threads, the backend
that runs it, the mode timed, and the device that follows from the backend. The backends and the
modes each offers come from the registry, the one place that names backends."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from harness import registry
from harness.json_values import JsonObject
from harness.model.spec import Head, MinGRUSpec, ModelSpec, SpecError

CELLS = ("rnn", "lstm", "gru", "mingru")
DTYPES = ("float32", "float64")
MODES = (*registry.ALL,)
PROBE_MODES = registry.PROBE_MODES


class SuiteError(ValueError):
    """An invalid suite file or case; the message names the field, value and what is allowed."""


def _bad(field: str, value: Any, allowed: str):
    raise SuiteError(f"{field} = {value!r} is invalid: allowed {allowed}")


@dataclasses.dataclass(frozen=True)
class BenchCase:
    backend: str
    mode: str
    model: ModelSpec | MinGRUSpec  # its dtype is the case's
    batch: int = 1
    steps: int = 1
    threads: int = 1
    size: int = 0  # probes only: N of the N x N product, or elements copied
    sweep: str = ""  # the suite's label for the sweep it came from; not part of the identity
    # A user's model (bench --model): its name, its canonical weights (.npz written by rnnbench,
    # digest-checked when read) and the file itself, which the runs_file backend times.
    model_name: str = ""
    weights_file: str = ""
    model_file: str = ""

    def __post_init__(self) -> None:
        if self.backend not in registry.timing_backends():
            _bad("backend", self.backend, ", ".join(registry.timing_backends()))
        offered = registry.modes_of(self.backend, self.cell)
        if self.mode not in offered:
            what = "minGRU" if self.cell == "mingru" else self.cell
            _bad(
                "mode", self.mode, f"for {self.backend} and {what}: {', '.join(offered) or 'none'}"
            )
        for name in ("batch", "steps", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _bad(name, value, "an integer >= 1")
        if self.is_probe and (isinstance(self.size, bool) or self.size < 1):
            _bad("size", self.size, f"an integer >= 1 for the {self.mode} probe")
        if registry.check_name(self.backend).runs_file and not self.model_file:
            _bad("model_file", self.model_file, f"a model file for {self.backend}")
        if self.model_name and not MODEL_NAME.fullmatch(self.model_name):
            _bad("model_name", self.model_name, "letters, digits, '.', '_' and '-'")

    # The flat names that results records, suites and the analysis use.
    @property
    def cell(self) -> str:
        return getattr(self.model.cell, "value", self.model.cell)

    @property
    def dtype(self) -> str:
        return self.model.dtype

    @property
    def input_size(self) -> int:
        return self.model.input_size

    @property
    def hidden(self) -> int:
        return self.model.hidden_size

    @property
    def layers(self) -> int:
        return self.model.num_layers

    @property
    def directions(self) -> int:
        return self.model.num_directions

    @property
    def head_units(self) -> int:
        return 0 if self.model.head is None else self.model.head.units

    @property
    def device(self) -> str:
        return registry.check_name(self.backend).device

    @property
    def is_probe(self) -> bool:
        return self.mode in PROBE_MODES

    @property
    def id(self) -> str:
        if self.is_probe:
            return f"{self.backend}/{self.mode}/{self.dtype}/N{self.size}/th{self.threads}"
        shape = f"B{self.batch}/T{self.steps}/I{self.input_size}/H{self.hidden}/L{self.layers}"
        extra = ("/bi" if self.directions == 2 else "") + (
            f"/head{self.head_units}" if self.head_units else ""
        )
        extra += f"/model-{self.model_name}" if self.model_name else ""
        return (
            f"{self.backend}/{self.mode}/{self.cell}/{self.dtype}/{shape}{extra}/th{self.threads}"
        )

    @property
    def group(self) -> tuple:
        """What the interleaved group shares: every field but the backend's and the mode."""
        return group_of(self.as_dict())

    def as_dict(self) -> JsonObject:
        return {
            "backend": self.backend,
            "mode": self.mode,
            "cell": self.cell,
            "dtype": self.dtype,
            "batch": self.batch,
            "steps": self.steps,
            "input_size": self.input_size,
            "hidden": self.hidden,
            "layers": self.layers,
            "threads": self.threads,
            "size": self.size,
            "sweep": self.sweep,
            "bidirectional": self.directions == 2,
            "head": self.head_units,
            "device": self.device,
            **self.model_fields(),
        }

    def model_fields(self) -> JsonObject:
        """A user's model's fields (bench --model), or none: its spec, where its weights and
        file are. The spec travels whole, since a file's model can be a variant of the cell."""
        if not self.model_name or not isinstance(self.model, ModelSpec):
            return {}
        return {
            "model": self.model_name,
            "model_spec": self.model.to_dict(),
            "weights_file": self.weights_file,
            "model_file": self.model_file,
        }

    @classmethod
    def from_dict(cls, data: JsonObject) -> BenchCase:
        """From as_dict's output, or a version 1 record (no bidirectional, head, device)."""
        known = ("cell", "dtype", "batch", "steps", "input_size", "hidden", "layers", "threads")
        fields = {
            k: data[k] for k in (*known, "size", "sweep", "bidirectional", "head") if k in data
        }
        if data.get("model"):
            spec = ModelSpec.from_dict(data["model_spec"])
            return model_case(
                data["backend"],
                data["mode"],
                spec,
                data["model"],
                data.get("weights_file", ""),
                data.get("model_file", ""),
                data["batch"],
                data["steps"],
                data["threads"],
                data.get("sweep", ""),
            )
        return make_case(data["backend"], data["mode"], **fields)


MODEL_NAME = re.compile(r"[A-Za-z0-9._-]+")
# A case's fields that its backend and mode decide (or that label it): cases that differ only
# in these form one interleaved group.
NOT_SHARED = ("backend", "mode", "device", "model_file", "sweep")


def group_of(fields: JsonObject) -> tuple:
    """The interleaved group of a case, from its fields (BenchCase.as_dict)."""
    return tuple(
        sorted((k, str(v)) for k, v in fields.items() if k not in NOT_SHARED and v is not None)
    )


def model_case(
    backend, mode, spec, name, weights_file, model_file, batch, steps, threads, sweep=""
) -> BenchCase:
    """A case of a user's model: its spec and canonical weights, and its file for the backend
    that times the file itself."""
    runs_file = registry.check_name(backend).runs_file
    return BenchCase(
        backend,
        mode,
        spec,
        batch,
        steps,
        threads,
        0,
        sweep,
        name,
        weights_file,
        model_file if runs_file else "",
    )


def make_case(
    backend: str,
    mode: str,
    cell: str = "lstm",
    dtype: str = "float32",
    batch: int = 1,
    steps: int = 1,
    input_size: int = 128,
    hidden: int = 256,
    layers: int = 1,
    threads: int = 1,
    size: int = 0,
    sweep: str = "",
    bidirectional: bool = False,
    head: int = 0,
) -> BenchCase:
    """A case from the flat fields a suite's sweep names; a bad value is a SuiteError."""
    if cell not in CELLS:
        _bad("cell", cell, ", ".join(CELLS))
    if dtype not in DTYPES:
        _bad("dtype", dtype, ", ".join(DTYPES))
    if isinstance(head, bool) or not isinstance(head, int) or head < 0:
        _bad("head", head, "0 (none) or the units of a softmax head")
    try:
        model = _model(cell, dtype, input_size, hidden, layers, bidirectional, head)
    except SpecError as exc:
        raise SuiteError(str(exc).replace("ModelSpec.", "BenchCase.")) from None
    return BenchCase(backend, mode, model, batch, steps, threads, size, sweep)


def _model(cell, dtype, input_size, hidden, layers, bidirectional, head):
    if cell == "mingru":
        if bidirectional or head:
            _bad("cell", cell, "minGRU without bidirectional or head")
        return MinGRUSpec(input_size, hidden, layers, dtype)
    head_spec = Head(head, "softmax") if head else None
    return ModelSpec(
        cell,
        input_size,
        hidden,
        num_layers=layers,
        bidirectional=bidirectional,
        head=head_spec,
        dtype=dtype,
    )
