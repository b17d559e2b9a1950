"""Confidence intervals of medians and ratios: order statistics by hand, scipy's binomial
quantiles, pairing by round, and a seeded bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from harness import stats


def test_median_ranks_by_hand():
    # n = 9: P(B <= 1) = 10/512 <= 0.025 < P(B <= 2) = 46/512: ranks 2 and 8 (1-based)
    assert stats.median_ranks(9) == (1, 7, pytest.approx(1 - 2 * 10 / 512))
    # n = 7: P(B <= 0) = 1/128 <= 0.025 < P(B <= 1) = 8/128: (min, max)
    assert stats.median_ranks(7) == (0, 6, pytest.approx(1 - 2 / 128))
    # n = 5: even (min, max) covers only 1 - 2/32 = 93.75%: that, and it says so
    assert stats.median_ranks(5) == (0, 4, pytest.approx(0.9375))


def test_median_ranks_match_scipy_binomial_quantiles():
    for n in (6, 9, 15, 20, 40, 101):
        for level in (0.9, 0.95, 0.99):
            low, high, coverage = stats.median_ranks(n, level)
            tail = (1 - level) / 2
            assert high == n - 1 - low
            if binom.cdf(0, n, 0.5) > tail:  # too few samples: (min, max), short of the level
                assert (low, coverage) == (0, pytest.approx(1 - 2 * binom.cdf(0, n, 0.5)))
                assert coverage < level
                continue
            assert binom.cdf(low, n, 0.5) <= tail < binom.cdf(low + 1, n, 0.5)
            assert coverage >= level


def test_median_ci_is_the_order_statistics():
    assert stats.median_ci([5, 1, 4, 2, 3, 9, 7, 8, 6]) == (5.0, 2.0, 8.0)
    assert stats.median_ci([3.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0]) == (4.0, 1.0, 7.0)
    with pytest.raises(ValueError, match="level"):
        stats.median_ci([1.0, 2.0], level=1.5)


def test_paired_ratio_is_the_median_of_per_round_ratios():
    a = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
    b = [1.0, 1.0, 2.0, 2.0, 5.0, 4.0, 5.0, 10.0, 6.0]  # ratios 2 4 3 4 2 3 2.8 1.6 3
    assert stats.ratio_ci(a, b, paired=True) == (3.0, 2.0, 4.0)  # sorted: 1.6 2 2 2.8 3 3 3 4 4
    # a drift shared by both rounds of a pair cancels: the interval stays a point
    drift = [1.0 + 0.1 * i for i in range(9)]
    assert stats.ratio_ci([3 * d for d in drift], drift, paired=True) == pytest.approx((3, 3, 3))
    with pytest.raises(ValueError, match="differ in length"):
        stats.ratio_ci([1.0, 2.0], [1.0], paired=True)


def test_unpaired_ratio_is_a_seeded_bootstrap_of_the_ratio_of_medians():
    a = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]
    b = [0.5] * 9  # a constant denominator: the interval is a's median's over 0.5
    estimate, low, high = stats.ratio_ci(a, b, paired=False)
    assert estimate == pytest.approx(1.4 / 0.5)
    assert 1.0 / 0.5 <= low < estimate < high <= 1.8 / 0.5
    assert stats.ratio_ci(a, b, paired=False) == (estimate, low, high)  # the same seed
    wider = stats.ratio_ci(a, b, paired=False, level=0.99)
    assert wider[0] == estimate and wider[1] <= low and wider[2] >= high
    # a percentile bootstrap lands on a median of a resample: a value of a, or a midpoint
    assert low in {v / 0.5 for v in a} | {(x + y) / 2 / 0.5 for x in a for y in a}


def test_unpaired_bootstrap_covers_a_known_median():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(40):
        a = rng.lognormal(0.0, 0.2, size=25)  # true median 1
        b = rng.lognormal(math.log(2), 0.2, size=25)  # true median 2
        _, low, high = stats.ratio_ci(a, b, paired=False)
        covered += low <= 0.5 <= high
    assert covered >= 34  # 95% nominal; 34 of 40 is far in the tail for a working interval


def test_formats():
    assert stats.format_ratio((1.72, 1.651, 1.8)) == "1.72x [1.65, 1.80]"
    assert stats.format_interval((1.2e-3, 1.19e-3, 1.21e-3)) == "1.20 ms [1.19, 1.21]"
    assert stats.format_interval((12e-6, 11e-6, 13.5e-6)) == "12.0 us [11.0, 13.5]"
    assert stats.half_width((2.0, 1.0, 2.0)) == 0.25
