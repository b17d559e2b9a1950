"""Statistics of raw timing samples, derived when read (the samples are what is stored)."""

from __future__ import annotations

import math
from collections.abc import Sequence

STAT_NAMES = ("n", "min", "median", "mean", "stdev", "iqr", "p90", "p99", "max")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default 'linear' method)."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """n, min, median, mean, sample stdev (0 for one sample), IQR (P75 - P25), P90, P99, max."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples to summarize")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"non-finite timing sample in {values}")
    n = len(values)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {
        "n": n,
        "min": values[0],
        "median": percentile(values, 50),
        "mean": mean,
        "stdev": math.sqrt(variance),
        "iqr": percentile(values, 75) - percentile(values, 25),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": values[-1],
    }


def format_seconds(seconds: float) -> str:
    """us below a millisecond, ms below a second, else s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"
