"""Statistics of raw timing samples, derived when read (the samples are what is stored)."""

from __future__ import annotations

import math
from collections.abc import Sequence


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


# Confidence intervals. A timing's samples are a handful of rounds (9 by default), so the
# median's interval comes from order statistics (distribution-free: the count of samples below
# the true median is Binomial(n, 1/2)), and a ratio of two cases timed in one interleaved group
# pairs their rounds by index (the two rounds of a pair ran back to back, so a drift of the
# machine's speed cancels in each ratio). Cases of different groups share no rounds: their
# ratio of medians gets a seeded percentile bootstrap.

Interval = tuple[float, float, float]  # (estimate, low, high)
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20260101


def median_ranks(n: int, level: float = 0.95) -> tuple[int, int, float]:
    """0-based ranks (low, high) of the sorted sample that bracket the median with coverage
    >= level, as narrow as possible and symmetric, and the coverage they give:
    1 - 2 P(B <= low) with B ~ Binomial(n, 1/2) the count of samples under the true median.
    When even (min, max) falls short of `level` (n <= 5 at 95%): (0, n-1) and its smaller
    coverage."""
    from scipy.stats import binom

    if n < 1:
        raise ValueError("a confidence interval needs at least one sample")
    if not 0 < level < 1:
        raise ValueError(f"level = {level!r} is invalid: allowed 0 < level < 1")
    tail = (1 - level) / 2
    low = int(binom.ppf(tail, n, 0.5))  # the smallest k with P(B <= k) >= tail
    if binom.cdf(low, n, 0.5) > tail:
        low -= 1  # the largest k with P(B <= k) <= tail
    low = max(low, 0)
    return low, n - 1 - low, float(1 - 2 * binom.cdf(low, n, 0.5))


def median_ci(samples: Sequence[float], level: float = 0.95) -> Interval:
    """(median, low, high): the order statistics that median_ranks picks."""
    values = sorted(float(v) for v in samples)
    low, high, _ = median_ranks(len(values), level)
    return percentile(values, 50), values[low], values[high]


def ratio_ci(
    a: Sequence[float],
    b: Sequence[float],
    paired: bool,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """The ratio a / b with its interval. paired: a[i] and b[i] are one round each, timed back
    to back: the median of the per-round ratios and its order-statistic interval. Unpaired: the
    ratio of the medians and a percentile bootstrap of it, each sample resampled on its own."""
    if paired:
        if len(a) != len(b):
            raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
        return median_ci([x / y for x, y in zip(a, b, strict=True)], level)
    estimate = percentile(sorted(a), 50) / percentile(sorted(b), 50)
    if len(a) < 2 or len(b) < 2:  # one round says nothing of the spread: unbounded
        return estimate, 0.0, math.inf
    import numpy as np
    from scipy.stats import bootstrap

    def ratio_of_medians(x, y, axis=-1):
        return np.median(x, axis=axis) / np.median(y, axis=axis)

    result = bootstrap(
        (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
        ratio_of_medians,
        n_resamples=BOOTSTRAP_RESAMPLES,
        vectorized=True,
        paired=False,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return estimate, float(interval.low), float(interval.high)


def half_width(interval: Interval) -> float:
    """The interval's half-width relative to its estimate (inf for an estimate of 0)."""
    estimate, low, high = interval
    return math.inf if estimate == 0 else (high - low) / 2 / abs(estimate)


def format_interval(interval: Interval) -> str:
    """A duration and its interval in the estimate's unit: '1.23 ms [1.20, 1.25]'."""
    estimate, low, high = interval
    text = format_seconds(estimate)
    number, unit = text.split(" ")
    digits = len(number.split(".")[1]) if "." in number else 0
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    return f"{text} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def format_ratio(interval: Interval, digits: int = 2) -> str:
    """'1.72x [1.65, 1.80]'."""
    estimate, low, high = interval
    return f"{estimate:.{digits}f}x [{low:.{digits}f}, {high:.{digits}f}]"
