"""Tail latency: percentiles of known samples by hand and against numpy, their order-statistic
intervals against an independent binomial sum and by simulation, and the stream record that
refuses percentiles its raw samples do not give."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import stats, tail
from harness.records.streaming import StreamTiming, percentiles_of


def test_percentiles_by_hand():
    # numpy's linear method: position (n - 1) q / 100 between the sorted samples
    assert tail.percentiles(range(1, 101)) == pytest.approx(
        {"p50": 50.5, "p90": 90.1, "p99": 99.01, "p99_9": 99.901}
    )
    assert tail.percentiles([40.0, 10.0, 30.0, 20.0]) == pytest.approx(
        {"p50": 25.0, "p90": 37.0, "p99": 39.7, "p99_9": 39.97}
    )
    assert tail.percentiles([7.0]) == {"p50": 7.0, "p90": 7.0, "p99": 7.0, "p99_9": 7.0}


def test_percentiles_are_numpys():
    samples = np.random.default_rng(3).lognormal(-10, 0.5, 1537)
    got = tail.percentiles(samples)
    expected = np.percentile(samples, [50, 90, 99, 99.9])
    assert [got[k] for k in ("p50", "p90", "p99", "p99_9")] == pytest.approx(expected, rel=1e-12)


def _cdf(k: int, n: int, p: float) -> float:
    """P(K <= k), K ~ Binomial(n, p), summed term by term (not scipy's)."""
    return math.fsum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k + 1))


@pytest.mark.parametrize("n, q", [(20, 90), (50, 99), (100, 50), (300, 90), (1024, 99)])
def test_quantile_ranks_are_the_narrowest_that_cover(n, q):
    lo, hi, coverage = tail.quantile_ranks(n, q)
    p, tail_mass = q / 100, 0.025
    below = _cdf(lo, n, p) if lo >= 0 else 0.0
    assert below <= tail_mass < _cdf(lo + 1, n, p)  # no higher lower end keeps its side
    if hi is None:
        assert _cdf(n - 1, n, p) < 1 - tail_mass  # even the largest sample falls short
        assert coverage == pytest.approx(1 - below)
        return
    assert _cdf(hi, n, p) >= 1 - tail_mass > _cdf(hi - 1, n, p)
    assert coverage == pytest.approx(_cdf(hi, n, p) - below)
    assert coverage >= 0.95


def test_the_median_interval_is_statss():
    for n in (9, 20, 101, 1024):
        lo, hi, coverage = tail.quantile_ranks(n, 50)
        assert (lo, hi, coverage) == pytest.approx(stats.median_ranks(n))


def test_a_high_percentile_of_few_samples_has_an_open_upper_end():
    # p99.9 from 1,024 calls: the largest lies below it with probability 0.999^1024 = 0.36
    lo, hi, _ = tail.quantile_ranks(1024, 99.9)
    assert hi is None and lo == 1020
    samples = [float(v) for v in range(1, 1025)]
    estimate, low, high = tail.percentile_ci(samples, 99.9)
    assert (estimate, low, high) == (pytest.approx(1022.977), 1021.0, math.inf)
    assert tail.format_open_interval((12e-6, 10e-6, math.inf)) == "12.0 us [10.0, -)"
    assert tail.format_open_interval((12e-6, 10e-6, 15e-6)) == "12.0 us [10.0, 15.0]"


def test_the_intervals_cover_the_true_percentile_as_often_as_they_say():
    rng = np.random.default_rng(20260101)
    for q, truth in ((90, math.log(10)), (99, math.log(100))):
        covered = 0
        for _ in range(400):
            _, low, high = tail.percentile_ci(rng.exponential(size=600), q)
            covered += low <= truth <= high
        assert covered / 400 >= 0.92, (q, covered)


def _timing(latencies, calls_per_round, **changes):
    fields = {
        "steps_checked": 4,
        "calls_per_round": calls_per_round,
        "latencies_ns": latencies,
        "percentiles": percentiles_of(latencies, 1e-9).model_dump(),
        "noop_ns": [900, 1100],
        "noop_class": "x + 0",
    }
    return StreamTiming.model_validate({**fields, **changes})


def test_a_stream_record_keeps_its_percentiles_only_as_its_samples_give_them():
    latencies = list(range(1000, 5000, 4))  # 1,000 calls, 1 to 5 us
    timing = _timing(latencies, 250)
    assert timing.percentiles.p99 == pytest.approx(np.percentile(latencies, 99) * 1e-9)
    assert timing.round_means() == pytest.approx(
        [np.mean(latencies[i : i + 250]) * 1e-9 for i in range(0, 1000, 250)]
    )
    forged = {**timing.percentiles.model_dump(), "p99": timing.percentiles.p99 / 2}
    with pytest.raises(ValueError, match=r"percentiles\.p99 = .* disagrees with its raw"):
        _timing(latencies, 250, percentiles=forged)
    with pytest.raises(ValueError, match="not whole rounds of 300 calls"):
        _timing(latencies, 300)


def test_a_stream_cases_samples_are_the_round_means_of_its_latencies():
    from harness.bench.case import make_case
    from harness.bench.group import new_record
    from harness.records.results import CaseRecord

    latencies = [1000 + (7 * i) % 300 for i in range(1024)]
    timing = _timing(latencies, 512)
    case = make_case("numpy", "stream", steps=4, input_size=4, hidden=8)
    record = new_record(case).model_dump()
    record.update(status="ok", samples_s=timing.round_means(), stream=timing.model_dump())
    assert CaseRecord.model_validate(record).stream.calls_per_round == 512
    record["samples_s"] = [s * 1.01 for s in timing.round_means()]
    with pytest.raises(ValueError, match="not the round means of stream.latencies_ns"):
        CaseRecord.model_validate(record)
