"""A finding and whether the samples settle it: every quoted median and ratio carries its 95%
interval, and a finding whose interval could flip its conclusion (a ratio's interval reaching
1; a figure with no such pivot, a half-width over MAX_HALF_WIDTH of it) is unstable."""

from __future__ import annotations

import dataclasses

from harness.stats import Interval, half_width

MAX_HALF_WIDTH = 0.25


@dataclasses.dataclass(frozen=True)
class Finding:
    text: str
    unstable: str = ""  # why the samples do not settle it; empty when they do


def instability(interval: Interval, pivot: float | None = 1.0) -> str:
    """Why an interval cannot carry a conclusion, or '' when it can: a ratio's conclusion is
    which side of `pivot` it lies on, so only an interval reaching the pivot flips it; a figure
    with no pivot (pivot None) is unsettled when its interval is wide."""
    estimate, low, high = interval
    if pivot is not None:
        return (
            f"its interval [{low:.3g}, {high:.3g}] reaches {pivot:g}"
            if low <= pivot <= high
            else ""
        )
    if half_width(interval) > MAX_HALF_WIDTH:
        return f"its interval is +-{100 * half_width(interval):.0f}% of {estimate:.3g}"
    return ""
