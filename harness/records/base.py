"""What every record of rnnbench's files is built from: a record that refuses fields it does
not know, and the numbers a file may hold (finite; sizes and seconds in range; settings a
person writes, typed strictly)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

Finite = Annotated[float, Field(allow_inf_nan=False)]
# A call timed: over 0 and under 1e6 s (11.6 days: beyond that a figure is no timing, and
# statistics of it could overflow).
Seconds = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
Size = Annotated[int, Field(ge=1, le=2**31)]  # a dimension: B, T, I, H, layers, threads
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _number(value: Any) -> Any:
    """A number as a person writes one: not a boolean, not a string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("allowed a number")
    return value


# Settings a person writes: an integer is an integer, a number is not a boolean or a string.
StrictCount = Annotated[StrictInt, Field(ge=1)]
StrictSeconds = Annotated[float, BeforeValidator(_number), Field(gt=0, allow_inf_nan=False)]
StrictNonNegative = Annotated[float, BeforeValidator(_number), Field(ge=0, allow_inf_nan=False)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
