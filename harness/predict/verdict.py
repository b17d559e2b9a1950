"""What a measured ratio of the solve's time to the step loop's says, from its 95% interval
alone: "wins" only where the whole interval lies below 1, "loses" where it lies above, and
"too close to call" where it holds 1."""

from __future__ import annotations

import math

VERDICTS = ("wins", "loses", "too close to call")


def measured_verdict(interval: tuple[float, float, float]) -> str:
    """interval = (estimate, low, high) of solve time / step-loop time."""
    _, low, high = interval
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise ValueError(f"interval {interval!r}: allowed finite 0 < low <= high")
    if high < 1:
        return "wins"
    if low > 1:
        return "loses"
    return "too close to call"


def agrees(measured: str, predicted: str | None) -> bool | None:
    """Whether a prediction's verdict agrees with the measured one (None: nothing to compare,
    or the measurement cannot tell)."""
    if predicted is None or measured == "too close to call":
        return None
    return measured == predicted
