"""The server: one trial of a load test in real time. The arrivals are a schedule fixed before
the trial (arrivals.py), so the load offered never depends on how the server keeps up (an open
loop: MLPerf LoadGen's Server scenario); the server sees a request once the clock passes its
arrival, batches what waits by the policy (batcher.py) and calls the step on each batch, one
batch at a time. A request's latency is its step's result minus its arrival: queueing, the
batcher's wait and the step itself.

A server that lets a request wait `give_up_s` is overloaded: the trial stops there, every
request that had arrived and was not served counted at its wait so far (a lower bound), and
fails every target (the search's rule)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from harness.load.arrivals import Schedule
from harness.load.batcher import BatchPolicy

SPIN_S = 3e-4  # sleep until this close to a deadline, then spin: time.sleep overshoots


@dataclasses.dataclass(frozen=True)
class Served:
    latencies_s: np.ndarray  # each request that arrived, in arrival order
    served: int
    calls: int
    end_s: float  # when the last result came, or when the trial gave up
    gave_up: bool

    @property
    def achieved_hz(self) -> float:
        return self.served / self.end_s if self.end_s > 0 else 0.0


def wait_until(deadline: float, clock: Callable[[], float]) -> None:
    """Sleep, then spin, until clock() >= deadline."""
    left = deadline - clock()
    if left > SPIN_S:
        time.sleep(left - SPIN_S)
    while clock() < deadline:
        pass


def serve(
    schedule: Schedule,
    serve_batch: Callable[[np.ndarray], object],
    policy: BatchPolicy,
    give_up_s: float,
    clock: Callable[[], float] = time.perf_counter,
    wait: Callable[[float, Callable[[], float]], None] = wait_until,
) -> Served:
    """Serve every request of the schedule; serve_batch(request indices) runs one step for
    them (their streams' states gathered and put back by the caller) and returns when its
    results are there."""
    times, stream_of = schedule.times, schedule.streams
    n = len(times)
    done = np.full(n, math.nan)
    waiting: list[int] = []
    arrived = calls = 0
    start = clock()
    gave_up = False
    while True:
        now = clock() - start
        while arrived < n and times[arrived] <= now:
            waiting.append(arrived)
            arrived += 1
        if not waiting:
            if arrived == n:
                break
            wait(start + times[arrived], clock)
            continue
        oldest = now - times[waiting[0]]
        if oldest >= give_up_s:
            gave_up = True
            break
        if not policy.due(len(waiting), oldest):
            until = times[waiting[0]] + policy.max_wait_s
            if arrived < n:
                until = min(until, times[arrived])
            wait(start + until, clock)
            continue
        batch, waiting = policy.take(waiting, stream_of)
        serve_batch(np.asarray(batch))
        calls += 1
        done[batch] = clock() - start
    end = clock() - start
    latencies = np.where(np.isnan(done[:arrived]), end, done[:arrived]) - times[:arrived]
    served = int(np.count_nonzero(~np.isnan(done)))
    last = float(np.nanmax(done)) if served else end
    return Served(latencies, served, max(calls, 1), end if gave_up else last, gave_up)
