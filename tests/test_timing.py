"""The timing core and statistics against fake timers and hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import stats
from harness.bench import timing


class FakeClock:
    """A timer that only moves when the workload runs: each call costs `cost` seconds."""

    def __init__(self, cost: float):
        self.now, self.cost, self.calls = 0.0, cost, 0

    def __call__(self) -> float:
        return self.now

    def run(self) -> None:
        self.now += self.cost
        self.calls += 1


def test_time_round_is_the_mean_per_call():
    clock = FakeClock(0.003)
    assert timing.time_round(clock.run, 7, clock) == pytest.approx(0.003)
    assert clock.calls == 7


@pytest.mark.parametrize(
    ("cost", "min_round", "expected"),
    [
        (1e-3, 0.01, 11),  # one call reaches a tenth: scale 1 -> ceil(1.05 * 10) = 11
        (1e-5, 0.01, 1050),  # doubles to 128 calls (1.28 ms), then scales by 1.05 * 7.8125
        (0.05, 0.01, 1),  # a call longer than a round: one loop
        (3e-4, 0.01, 36),  # 4 calls = 1.2 ms >= 1 ms: ceil(4 * 1.05 * 0.01 / 1.2e-3) = 36
    ],
)
def test_calibrate_by_hand(cost, min_round, expected):
    clock = FakeClock(cost)
    loops = timing.calibrate(clock.run, min_round, clock)
    assert loops == expected
    assert loops * cost >= min_round or loops == 1


class SpeedingClock(FakeClock):
    """Calls cost 1 ms for the first three, then 0.25 ms (a cache warmed, a JIT kicked in)."""

    def run(self) -> None:
        self.cost = 1e-3 if self.calls < 3 else 2.5e-4
        super().run()


def test_calibrate_rechecks_until_a_measured_round_lasts():
    clock = SpeedingClock(1e-3)
    loops = timing.calibrate(clock.run, 0.01, clock)
    # trusting the first call would give 11 loops: rounds of 2.75 ms against 10 ms asked for
    assert loops == 42
    assert timing.time_round(clock.run, loops, clock) * loops >= 0.01


def test_calibrate_stops_at_max_loops():
    clock = FakeClock(1e-12)
    assert timing.calibrate(clock.run, 1.0, clock, max_loops=64) == 64


def test_settle_warms_up_for_its_time_then_calibrates():
    clock = FakeClock(0.01)
    loops, rounds = timing.settle(clock.run, 0.05, 0.04, clock, clock)
    # 5 calls of warm-up (the last 10 ms, a tenth of a round or more), then calibration: 10 ms
    # reaches a tenth, so ceil(1.05 * 4) = 5 loops, a 50 ms round
    assert loops == 5 and clock.calls == 5 + 1 + 5
    assert [r.loops for r in rounds] == [1, 1, 5]


def test_a_slow_call_is_its_own_round_without_calibrating():
    """The build made the cold call; one warm call that lasts a round is enough: under a busy
    machine's 100x slowdowns each call saved is seconds."""
    clock = FakeClock(0.2)
    loops, rounds = timing.settle(clock.run, 0.05, 0.04, clock, clock)
    assert (loops, clock.calls) == (1, 1) and [r.wall_s for r in rounds] == [0.2]


class StallingClock(FakeClock):
    """Calls of 0.2 ms, but the 300th (the last of a 0.1 s warm-up) stalls for 60 ms."""

    def run(self) -> None:
        self.cost = 0.06 if self.calls == 299 else 2e-4
        super().run()


def test_a_stalled_warm_up_call_does_not_make_a_fast_call_its_own_round():
    clock = StallingClock(2e-4)
    loops, rounds = timing.settle(clock.run, 0.1, 0.05, clock, clock)
    assert clock.calls > 300  # the warm-up ended on the stall, then calibration ran
    assert loops * 2e-4 >= 0.05 and loops > 200
    assert all(r.wall_s < 0.06 for r in rounds)  # the stall is no round for Interference


def test_statistics_by_hand():
    s = stats.summarize([3, 1, 100, 2, 4])
    assert s["n"] == 5 and s["min"] == 1 and s["max"] == 100
    assert s["median"] == 3 and s["mean"] == 22
    assert s["stdev"] == pytest.approx(math.sqrt(7610 / 4))
    assert s["iqr"] == pytest.approx(4 - 2)
    assert s["p90"] == pytest.approx(4 + 0.6 * 96)
    assert s["p99"] == pytest.approx(4 + 0.96 * 96)


def test_percentiles_match_numpy():
    values = np.random.default_rng(0).lognormal(size=37)
    s = stats.summarize(values)
    for key, q in (("median", 50), ("p90", 90), ("p99", 99)):
        assert s[key] == pytest.approx(np.percentile(values, q), rel=1e-12)
    assert s["iqr"] == pytest.approx(np.subtract(*np.percentile(values, [75, 25])), rel=1e-12)
    assert s["stdev"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)


def test_one_sample_and_bad_samples():
    assert stats.summarize([0.5])["stdev"] == 0.0
    with pytest.raises(ValueError, match="no samples"):
        stats.summarize([])
    with pytest.raises(ValueError, match="non-finite"):
        stats.summarize([1.0, float("nan")])


def test_loop_overhead_is_under_one_percent_of_a_millisecond():
    """The harness's own cost per timed call (measured ~35 ns here): the bound is 10 us,
    300x above, so only a broken timing loop fails it."""
    assert timing.loop_overhead() < 0.01 * 1e-3
    assert 0 < timing.timer_resolution() < 1e-4


class StoppableClock(FakeClock):
    """Wall and CPU clocks of one busy thread: a call costs `cost` of both, and a stop (SIGSTOP,
    a descheduling) during the call numbered in `stops` adds its seconds to the wall alone."""

    def __init__(self, cost: float, stops: dict[int, float]):
        super().__init__(cost)
        self.cpu, self.stops = 0.0, dict(stops)

    def cpu_timer(self) -> float:
        return self.cpu

    def run(self) -> None:
        self.now += self.stops.pop(self.calls, 0.0)
        self.cpu += self.cost
        super().run()


def _guarded(clock: StoppableClock, loops: int) -> timing.Interference:
    calibration = [timing.measure_round(clock.run, loops, clock, clock.cpu_timer)]
    return timing.Interference(calibration)


def test_a_round_stopped_for_a_while_is_retimed_and_counted_never_kept():
    clock = StoppableClock(0.01, {14: 8.0})  # the second round (calls 10-19) stopped for 8 s
    guard = _guarded(clock, 10)
    assert guard.share == pytest.approx(1.0)
    assert timing.clean_round(clock.run, 10, guard, clock, clock.cpu_timer) == (
        pytest.approx(0.01),
        1,
    )
    assert clock.calls == 30  # the stopped round, then its clean retry


def test_a_round_within_its_stretch_is_kept():
    # 5 ms more than its 100 ms of work: under SLACK_S, a scheduler's slice
    clock = StoppableClock(0.01, {12: 0.005})
    guard = _guarded(clock, 10)
    sample, retimed = timing.clean_round(clock.run, 10, guard, clock, clock.cpu_timer)
    assert (sample, retimed) == (pytest.approx(0.0105), 0)
    # a long round may stretch by less than MAX_STRETCH: 10 s of work, 4 s stopped
    clock = StoppableClock(1.0, {12: 4.0})
    guard = _guarded(clock, 10)
    assert timing.clean_round(clock.run, 10, guard, clock, clock.cpu_timer)[1] == 0
    clock = StoppableClock(1.0, {12: 6.0})  # 1.6x: retimed
    guard = _guarded(clock, 10)
    assert timing.clean_round(clock.run, 10, guard, clock, clock.cpu_timer)[1] == 1


def test_a_case_that_never_runs_undisturbed_is_given_up():
    stops = {call: 1.0 for call in range(10, 100)}  # every round from the second on
    clock = StoppableClock(0.01, stops)
    guard = _guarded(clock, 10)
    sample, retimed = timing.clean_round(clock.run, 10, guard, clock, clock.cpu_timer, retries=1)
    assert sample is None and retimed == 2 and clock.calls == 30


def test_a_machine_that_stays_busier_is_the_new_normal():
    """Stopped a second in every round from the second on: the first tries are retimed, then
    the median share is the machine's as it now is, and the rounds are kept (as on a machine
    that was that busy from the start): the case is timed, not given up."""
    stops = {call: 1.0 for call in range(10, 1000, 10)}
    clock = StoppableClock(0.01, stops)
    guard = _guarded(clock, 10)
    sample, retimed = timing.clean_round(clock.run, 10, guard, clock, clock.cpu_timer)
    assert sample == pytest.approx(0.11) and retimed == 2


def test_the_guard_judges_by_the_share_of_a_cpu_the_case_gets():
    """Two busy threads (2 s of CPU per wall second) or half a core on a busy machine: a round
    is judged against the share its own calibration showed, not against one core."""
    busy = timing.Interference([timing.Round(1, 0.1, 0.05), timing.Round(1, 0.1, 0.05)])
    assert busy.share == pytest.approx(0.5)
    assert busy.allows(timing.Round(4, 0.2, 0.1))  # still half a core
    assert not busy.allows(timing.Round(4, 2.0, 0.1))  # 10x: stopped
    threads = timing.Interference([timing.Round(1, 0.1, 0.2)])
    assert not threads.allows(timing.Round(4, 0.2, 0.2))  # one thread's worth: 2x slower
    assert timing.Interference([]).allows(timing.Round(1, 5.0, 0.0))  # nothing to judge by


def test_calibration_hands_its_rounds_to_the_guard():
    clock = FakeClock(1e-3)
    rounds: list[timing.Round] = []
    loops = timing.calibrate(clock.run, 0.01, clock, rounds=rounds, cpu_timer=clock)
    assert loops == 11 and [r.loops for r in rounds] == [1, 11]  # 1 ms reaches a tenth
