"""Tail latency from raw per-call samples: the percentiles a latency benchmark reports (MLPerf
LoadGen's p50, p90, p99, p99.9), each with a distribution-free interval from order statistics.

A percentile is numpy's default ('linear': harness.stats.percentile), so that
numpy.percentile(samples, q) recomputes every stored figure. Its interval [x_lo, x_hi] (0-based
ranks of the sorted sample) covers the true q-quantile when at least lo + 1 and at most hi
samples fall below it: with K ~ Binomial(n, q/100) the count below, coverage is
P(lo < K <= hi), ranks chosen as narrow as that allows at the level asked for. The calls are
taken as independent draws (the rounds are interleaved with the group's other cases so that a
drift of the machine's speed is shared, not hidden). Where even the largest sample cannot bound
a high percentile from above at that level (p99.9 from 1,024 calls: the top sample lies below
it with probability 0.36), the interval is open: its upper end is infinite."""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.stats import Interval, percentile

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
NAMES = {50.0: "p50", 90.0: "p90", 99.0: "p99", 99.9: "p99_9"}  # field names in the records
LABELS = {50.0: "p50", 90.0: "p90", 99.0: "p99", 99.9: "p99.9"}
MIN_CALLS = 1024  # MLPerf LoadGen's least number of queries for a latency figure


def quantile_ranks(n: int, q: float, level: float = 0.95) -> tuple[int, int | None, float]:
    """0-based ranks (lo, hi) of the sorted sample bracketing the q-th percentile with coverage
    >= level where the sample allows, and that coverage. lo = -1: no sample bounds it from
    below (0, a latency's floor, does); hi = None: none bounds it from above."""
    from scipy.stats import binom

    if n < 1:
        raise ValueError("a percentile's interval needs at least one sample")
    if not 0 < q < 100:
        raise ValueError(f"q = {q!r} is invalid: allowed 0 < q < 100")
    if not 0 < level < 1:
        raise ValueError(f"level = {level!r} is invalid: allowed 0 < level < 1")
    p, tail = q / 100, (1 - level) / 2
    lo = int(binom.ppf(tail, n, p))  # the smallest k with P(K <= k) >= tail
    if binom.cdf(lo, n, p) > tail:
        lo -= 1  # the largest k with P(K <= k) <= tail
    hi = int(binom.ppf(1 - tail, n, p))  # the smallest k with P(K <= k) >= 1 - tail
    below = binom.cdf(lo, n, p) if lo >= 0 else 0.0
    if hi >= n:  # K <= n always: only an unbounded end reaches the level
        return lo, None, float(1 - below)
    return lo, hi, float(binom.cdf(hi, n, p) - below)


def percentile_ci(samples: Sequence[float], q: float, level: float = 0.95) -> Interval:
    """(estimate, low, high) of the q-th percentile; low 0 and high inf where no sample bounds
    that side (see quantile_ranks)."""
    values = sorted(float(v) for v in samples)
    lo, hi, _ = quantile_ranks(len(values), q, level)
    low = values[lo] if lo >= 0 else 0.0
    high = values[hi] if hi is not None else math.inf
    return percentile(values, q), low, high


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """{p50, p90, p99, p99_9}: the estimates alone (what a record caches)."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples for percentiles")
    return {NAMES[q]: percentile(values, q) for q in PERCENTILES}


def tail(samples: Sequence[float], level: float = 0.95) -> dict[str, Interval]:
    """{p50, p90, p99, p99_9}: each percentile with its interval."""
    return {NAMES[q]: percentile_ci(samples, q, level) for q in PERCENTILES}


def format_open_interval(interval: Interval) -> str:
    """'1.23 ms [1.20, 1.25]', or '1.23 ms [1.20, -)' for an interval with no upper end."""
    from harness.stats import format_interval

    estimate, low, high = interval
    if math.isfinite(high):
        return format_interval(interval)
    closed = format_interval((estimate, low, max(estimate, low)))
    return closed.rsplit(",", 1)[0] + ", -)"
