"""A benchmark case: the fields of harness/records/case_fields.py (declared there once: what a
case is, its id, its group and its table key follow from them), checked against what this
rnnbench can time: a backend the registry names, a mode it offers for the cell, a model that
builds. Its model is a ModelSpec (minGRU's own spec for minGRU), built from its fields or, for
a user's model (bench --model), from the spec it carries."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import ConfigDict, ValidationError, model_validator

from harness import registry
from harness.json_values import JsonObject
from harness.model.spec import Cell, Head, MinGRUSpec, ModelSpec, SpecError
from harness.records.case_fields import CaseFields, case_id, group_key
from harness.records.errors import one_line

CELLS = ("rnn", "lstm", "gru", "mingru")
DTYPES = ("float32", "float64")
MODES = (*registry.ALL,)
PROBE_MODES = registry.PROBE_MODES
MODEL_NAME = re.compile(r"[A-Za-z0-9._-]+")


class SuiteError(ValueError):
    """An invalid suite file or case; the message names the field, value and what is allowed."""


def _bad(field: str, value: Any, allowed: str):
    raise SuiteError(f"{field} = {value!r} is invalid: allowed {allowed}")


class BenchCase(CaseFields):
    """A case this rnnbench can time. Build one with make_case, model_case or from_dict (a
    SuiteError names what is wrong); fields that decide nothing here keep their defaults."""

    model_config = ConfigDict(frozen=True, strict=True)

    @model_validator(mode="after")
    def _timeable(self) -> BenchCase:
        if self.cell not in CELLS:
            _bad("cell", self.cell, ", ".join(CELLS))
        if self.dtype not in DTYPES:
            _bad("dtype", self.dtype, ", ".join(DTYPES))
        offered = registry.modes_of(self.backend, self.cell)
        if self.mode not in offered:
            what = "minGRU" if self.cell == "mingru" else self.cell
            _bad(
                "mode", self.mode, f"for {self.backend} and {what}: {', '.join(offered) or 'none'}"
            )
        if self.is_probe and self.size < 1:
            _bad("size", self.size, f"an integer >= 1 for the {self.mode} probe")
        if registry.check_name(self.backend).runs_file and not self.model_file:
            _bad("model_file", self.model_file, f"a model file for {self.backend}")
        if self.model and not MODEL_NAME.fullmatch(self.model):
            _bad("model", self.model, "letters, digits, '.', '_' and '-'")
        try:
            self.spec  # noqa: B018 (built now: a model that cannot be is refused here)
        except SpecError as exc:
            raise SuiteError(str(exc).replace("ModelSpec.", "BenchCase.")) from None
        return self

    @functools.cached_property
    def spec(self) -> ModelSpec | MinGRUSpec:
        """The model, in the case's dtype: its own spec for a user's model, else built from
        the fields."""
        if self.model_spec is not None:
            return ModelSpec.from_dict(self.model_spec)
        if self.cell == "mingru":
            if self.bidirectional or self.head:
                _bad("cell", self.cell, "minGRU without bidirectional or head")
            return MinGRUSpec(self.input_size, self.hidden, self.layers, self.dtype)
        return ModelSpec(
            Cell(self.cell),
            self.input_size,
            self.hidden,
            num_layers=self.layers,
            bidirectional=self.bidirectional,
            head=Head(self.head, "softmax") if self.head else None,
            dtype=self.dtype,
        )

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def is_probe(self) -> bool:
        return self.mode in PROBE_MODES

    @property
    def id(self) -> str:
        return case_id(self.model_dump(), self.is_probe)

    @property
    def group(self) -> tuple:
        """What the interleaved group shares: every field but the backend's and the mode."""
        return group_key(self.as_dict())

    def as_dict(self) -> JsonObject:
        """The fields as a record holds them (a user's model's only where there is one)."""
        return self.model_dump(exclude_none=True)

    @classmethod
    def from_dict(cls, data: JsonObject) -> BenchCase:
        """From as_dict's output, or a version 1 record (no bidirectional, head, device)."""
        return _built(data)


def _built(fields: JsonObject) -> BenchCase:
    """The case of `fields`; a SuiteError naming the first field that is wrong."""
    if fields.get("backend") not in registry.timing_backends():  # before its device is looked up
        _bad("backend", fields.get("backend"), ", ".join(registry.timing_backends()))
    try:
        return BenchCase.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, SuiteError):  # the validator's own sentence
            raise SuiteError(str(cause)) from None
        text = one_line(exc, "case").removeprefix("case: ")
        raise SuiteError(text.replace(": allowed", " is invalid: allowed", 1)) from None


def model_case(
    backend, mode, spec, name, weights_file, model_file, batch, steps, threads, sweep=""
) -> BenchCase:
    """A case of a user's model: its spec and canonical weights, and its file for the backend
    that times the file itself."""
    runs_file = registry.check_name(backend).runs_file
    return _built(
        {
            "backend": backend,
            "mode": mode,
            "cell": getattr(spec.cell, "value", spec.cell),
            "dtype": spec.dtype,
            "batch": batch,
            "steps": steps,
            "input_size": spec.input_size,
            "hidden": spec.hidden_size,
            "layers": spec.num_layers,
            "bidirectional": spec.num_directions == 2,
            "head": 0 if spec.head is None else spec.head.units,
            "threads": threads,
            "sweep": sweep,
            "model": name,
            "model_spec": spec.to_dict(),
            "weights_file": weights_file,
            "model_file": model_file if runs_file else "",
        }
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
    **fields: Any,
) -> BenchCase:
    """A case from the flat fields a suite's sweep names (any other field of CaseFields by
    its name); a bad value is a SuiteError."""
    shape = {"cell": cell, "dtype": dtype, "batch": batch, "steps": steps}
    shape |= {"input_size": input_size, "hidden": hidden, "layers": layers, "threads": threads}
    return _built({"backend": backend, "mode": mode, **shape, **fields})
