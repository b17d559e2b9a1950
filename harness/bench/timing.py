"""The timing core: warm up, calibrate loops per round, time rounds, keep raw samples.

`run` is one call of the workload with its device synchronisation inside (CUDA sync, outputs
materialised): what is timed is what a caller waits for. A sample is the mean seconds per call
over one round of `loops` back-to-back calls, so that a workload far shorter than the timer's
resolution still gets measured."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

Timer = Callable[[], float]


def time_round(run: Callable[[], object], loops: int, timer: Timer = time.perf_counter) -> float:
    """Mean seconds per call over `loops` calls."""
    start = timer()
    for _ in range(loops):
        run()
    return (timer() - start) / loops


def warm_up(
    run: Callable[[], object],
    min_seconds: float,
    min_calls: int = 1,
    timer: Timer = time.perf_counter,
) -> int:
    """Call until both min_calls calls and min_seconds have passed; return the calls made."""
    calls, start = 0, timer()
    while calls < min_calls or timer() - start < min_seconds:
        run()
        calls += 1
    return calls


def calibrate(
    run: Callable[[], object],
    min_round_s: float,
    timer: Timer = time.perf_counter,
    max_loops: int = 1 << 20,
) -> int:
    """The loops per round for a measured round to last at least min_round_s: double from 1
    until a round reaches a tenth of it, then scale up by the measured time, and time a whole
    round at the new count again, growing it until one really lasts min_round_s (a call that
    got faster after its first runs, a cache warmed, would otherwise leave rounds short)."""
    loops = 1
    while True:
        elapsed = time_round(run, loops, timer) * loops
        if elapsed >= min_round_s or loops >= max_loops:
            return loops
        if elapsed >= min_round_s / 10:
            scaled = math.ceil(loops * 1.05 * min_round_s / elapsed)  # 5%: land past the line
            loops = min(max_loops, max(loops + 1, scaled))
        else:
            loops = min(max_loops, loops * 2)


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
