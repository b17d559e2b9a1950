"""The timing core: warm up, calibrate loops per round, time rounds, keep raw samples.

`run` is one call of the workload with its device synchronisation inside (CUDA sync, outputs
materialised): what is timed is what a caller waits for. A sample is the mean seconds per call
over one round of `loops` back-to-back calls, so that a workload far shorter than the timer's
resolution still gets measured.

A round also measures the CPU time its process used (every thread of it). A round whose wall
time exceeds what that CPU time allows, at the share of a CPU the case got while it was
calibrated, was stopped (SIGSTOP, a debugger) or descheduled while it ran: it is timed again
and counted, never kept as a sample (`Interference`)."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable

Timer = Callable[[], float]

# A round may take this many times the wall time its CPU time needs at the calibrated share of
# a CPU, or SLACK_S more, before it is retimed. SLACK_S: what a busy scheduler's time slices take
# from a short round (on 2 cores at a load of 8, 5 ms rounds took from 7 to 27 ms).
MAX_STRETCH = 1.5
SLACK_S = 0.03
RETRIES = 10  # interfered tries of one round in a row before the case is given up


@dataclasses.dataclass(frozen=True)
class Round:
    """One round: `loops` calls in `wall_s` seconds, for which the process used `cpu_s` seconds
    of CPU (all its threads)."""

    loops: int
    wall_s: float
    cpu_s: float

    @property
    def per_call_s(self) -> float:
        return self.wall_s / self.loops

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second: 1 for one busy thread, 2 for two, 0 when stopped."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def measure_round(
    run: Callable[[], object],
    loops: int,
    timer: Timer = time.perf_counter,
    cpu_timer: Timer = time.process_time,
) -> Round:
    cpu, start = cpu_timer(), timer()
    for _ in range(loops):
        run()
    wall = timer() - start
    return Round(loops, wall, cpu_timer() - cpu)


class Interference:
    """Tells a round the worker was stopped or descheduled in from one it ran through: its
    wall time against its CPU time at the share of a CPU the case usually gets, the median
    over the calibration's rounds and every round tried since. One stop is an outlier that
    moves no median; a machine that stays busier moves it, and its rounds are kept again."""

    def __init__(self, calibration: list[Round]):
        self.shares = [r.cpu_share for r in calibration if r.wall_s > 0]

    @property
    def share(self) -> float | None:
        return statistics.median(self.shares) if self.shares else None

    def allows(self, measured: Round) -> bool:
        share = self.share
        if not share:  # nothing to judge by (a process that used no CPU at all)
            return True
        needed = measured.cpu_s / share  # the wall time the round's work takes at that share
        return measured.wall_s <= max(MAX_STRETCH * needed, needed + SLACK_S)

    def judge(self, measured: Round) -> bool:
        """Whether the round may be kept; its share joins those the next is judged by."""
        allowed = self.allows(measured)
        if measured.wall_s > 0:
            self.shares.append(measured.cpu_share)
        return allowed


def clean_round(
    run: Callable[[], object],
    loops: int,
    guard: Interference,
    timer: Timer = time.perf_counter,
    cpu_timer: Timer = time.process_time,
    retries: int = RETRIES,
) -> tuple[float | None, int]:
    """(seconds per call of the first round the guard allows, the rounds retimed before it);
    None after `retries` retimed rounds in a row: the machine would not let the case run."""
    for retimed in range(retries + 1):
        measured = measure_round(run, loops, timer, cpu_timer)
        if guard.judge(measured):
            return measured.per_call_s, retimed
    return None, retries + 1


def time_round(run: Callable[[], object], loops: int, timer: Timer = time.perf_counter) -> float:
    """Mean seconds per call over `loops` calls."""
    start = timer()
    for _ in range(loops):
        run()
    return (timer() - start) / loops


def calibrate(
    run: Callable[[], object],
    min_round_s: float,
    timer: Timer = time.perf_counter,
    max_loops: int = 1 << 20,
    rounds: list[Round] | None = None,
    cpu_timer: Timer = time.process_time,
) -> int:
    """The loops per round for a measured round to last at least min_round_s: double from 1
    until a round reaches a tenth of it, then scale up by the measured time, and time a whole
    round at the new count again, growing it until one really lasts min_round_s (a call that
    got faster after its first runs, a cache warmed, would otherwise leave rounds short).
    rounds: where to add the rounds timed (those of a tenth of min_round_s or more)."""
    loops = 1
    while True:
        measured = measure_round(run, loops, timer, cpu_timer)
        elapsed = measured.wall_s
        if rounds is not None and elapsed >= min_round_s / 10:
            rounds.append(measured)
        if elapsed >= min_round_s or loops >= max_loops:
            return loops
        if elapsed >= min_round_s / 10:
            scaled = math.ceil(loops * 1.05 * min_round_s / elapsed)  # 5%: land past the line
            loops = min(max_loops, max(loops + 1, scaled))
        else:
            loops = min(max_loops, loops * 2)


def settle(
    run: Callable[[], object],
    warmup_s: float,
    min_round_s: float,
    timer: Timer = time.perf_counter,
    cpu_timer: Timer = time.process_time,
) -> tuple[int, list[Round]]:
    """(loops per round, the rounds timed on the way, for Interference) of a workload whose
    first (cold) call its build made: calls for warmup_s, at least one; where the fastest of
    them still lasts min_round_s it is a round of its own, else calibrate. A slow call is made
    twice before its rounds, not four times. The fastest, not the last: one warm-up call
    stalled past min_round_s (a 0.2 ms GRU step loop of 16 steps) left its case at one call a
    round, each call cold and 4x slower after the pause between rounds."""
    start = timer()
    fastest = None
    while True:
        last = measure_round(run, 1, timer, cpu_timer)
        if fastest is None or last.wall_s < fastest.wall_s:
            fastest = last
        if timer() - start >= warmup_s:
            break
    rounds = [fastest] if fastest.wall_s >= min_round_s / 10 else []
    if fastest.wall_s >= min_round_s:
        return 1, rounds
    return calibrate(run, min_round_s, timer, rounds=rounds, cpu_timer=cpu_timer), rounds


def loop_overhead(loops: int = 100_000, repeats: int = 5, timer: Timer = time.perf_counter):
    """Seconds per call that the timing loop itself adds: the best of `repeats` rounds of a
    call that does nothing (the call's own cost included, so an upper bound)."""

    def nothing():
        return None

    return min(time_round(nothing, loops, timer) for _ in range(repeats))


def timer_resolution(timer: Timer = time.perf_counter, tries: int = 1000) -> float:
    """The smallest non-zero step the timer shows."""
    best = float("inf")
    for _ in range(tries):
        start = timer()
        now = timer()
        while now == start:
            now = timer()
        best = min(best, now - start)
    return best
