"""A benchmark suite file (benchmarks/suites/*.toml) as a typed record: a name, a description,
a budget, [timing] settings and [[sweep]] tables whose every axis is a non-empty list. Integer
fields are integers (a TOML 2.5 or true is refused, not rounded). What the values mean (known
backends, the modes each offers) is checked when the sweeps are expanded into cases
(harness.bench.suites)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr, model_validator

from harness.records.results import Record, StrictSeconds, Timing

Positive = Annotated[StrictInt, Field(ge=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]


def _file_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", name):
        raise ValueError(
            "allowed 1 to 80 letters, digits, '.', '_' and '-', starting with a letter or digit "
            "(it names the default results file)"
        )
    return name


Name = Annotated[StrictStr, AfterValidator(_file_name)]


def _axis(kind, description: str):
    return Annotated[list[kind], Field(min_length=1, description=description)]


class Sweep(Record):
    """One [[sweep]] table: the product of its axes."""

    name: StrictStr | None = Field(None, description="a label for the report")
    backends: _axis(StrictStr, "registered timing backends (rnnbench's registry)")
    modes: _axis(StrictStr, "what is timed: forward, train, gemm, ...") = ["forward"]
    cell: _axis(StrictStr, "rnn, lstm, gru, mingru") = ["lstm"]
    dtype: _axis(StrictStr, "float32, float64") = ["float32"]
    batch: _axis(Positive, "batch sizes") = [1]
    steps: _axis(Positive, "sequence lengths") = [1]
    input: _axis(Positive | Literal["hidden"], "input sizes, or 'hidden' for I = H") = [128]
    hidden: _axis(Positive, "hidden sizes") = [256]
    layers: _axis(Positive, "stacked layers") = [1]
    bidirectional: _axis(StrictBool, "directions") = [False]
    head: _axis(NonNegativeInt, "softmax head units (0: none)") = [0]
    threads: _axis(Positive, "thread counts") = [1]
    size: _axis(NonNegativeInt, "probes: N of the N x N product, or elements copied") = [0]

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        """A suite written before the one word: `targets` is `backends` now."""
        if isinstance(data, dict) and "targets" in data:
            raise ValueError("`targets` is now called `backends` (the registry's word): rename it")
        return data


class SuiteFile(Record):
    name: Name | None = Field(None, description="default: the file's stem")
    description: StrictStr = ""
    budget_s: StrictSeconds | None = Field(
        None, description="seconds the suite may measure (> 0): warned of up front, enforced"
    )
    timing: Timing = Timing()
    sweep: Annotated[list[Sweep], Field(min_length=1, description="at least one [[sweep]]")]
