"""A benchmark suite file (benchmarks/suites/*.toml) as a typed record: a name, a description,
a budget, [timing] settings and [[sweep]] tables whose every axis is a non-empty list. Integer
fields are integers (a TOML 2.5 or true is refused, not rounded). What the values mean (known
backends, the modes each offers) is checked when the sweeps are expanded into cases
(harness.bench.suites)."""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr, model_validator

from harness.records.base import Record, StrictSeconds
from harness.records.results import Timing

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


T = TypeVar("T")
NonEmpty = Annotated[list[T], Field(min_length=1)]  # an axis: a list of at least one value


class Sweep(Record):
    """One [[sweep]] table: the product of its axes."""

    name: StrictStr | None = Field(None, description="a label for the report")
    backends: NonEmpty[StrictStr] = Field(
        description="registered timing backends (rnnbench's registry)"
    )
    modes: NonEmpty[StrictStr] = Field(
        ["forward"], description="what is timed: forward, train, gemm, ..."
    )
    cell: NonEmpty[StrictStr] = Field(["lstm"], description="rnn, lstm, gru, mingru")
    dtype: NonEmpty[StrictStr] = Field(["float32"], description="float32, float64")
    batch: NonEmpty[Positive] = Field([1], description="batch sizes")
    steps: NonEmpty[Positive] = Field([1], description="sequence lengths")
    input: NonEmpty[Positive | Literal["hidden"]] = Field(
        [128], description="input sizes, or 'hidden' for I = H"
    )
    hidden: NonEmpty[Positive] = Field([256], description="hidden sizes")
    layers: NonEmpty[Positive] = Field([1], description="stacked layers")
    bidirectional: NonEmpty[StrictBool] = Field([False], description="directions")
    head: NonEmpty[NonNegativeInt] = Field([0], description="softmax head units (0: none)")
    threads: NonEmpty[Positive] = Field([1], description="thread counts")
    size: NonEmpty[NonNegativeInt] = Field(
        [0], description="probes: N of the N x N product, or elements copied"
    )

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
