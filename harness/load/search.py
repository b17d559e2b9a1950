"""The search for the most streams a machine serves under each p99 target.

For the loosest target first: from a starting N (an estimate of capacity), double N while a
trial passes and halve it while one fails, until a passing N and a failing N bracket the
answer; then bisect until they are within `resolution` of each other (5%, or one stream). A
tighter target starts from the trials already run (a trial is a point of the latency curve,
whatever the target). The answer per target is what the trials settle: the largest N that
passes below the smallest N that fails, its p99's whole interval over the target
(harness.records.streaming.capacity); a trial that gave up fails every target."""

from __future__ import annotations

from collections.abc import Callable

from harness.records.streaming import LoadTrial, capacity

MAX_STREAMS = 1 << 20


def search(
    trial: Callable[[int], LoadTrial],
    targets: list[float],
    start: int,
    resolution: float = 0.05,
    max_trials: int = 40,
) -> list[LoadTrial]:
    """Every trial run, in order; trial(N) runs one at N streams."""
    done: dict[int, LoadTrial] = {}

    def passes(streams: int, target: float) -> bool:
        if streams not in done:
            if len(done) >= max_trials:
                raise RuntimeError(f"the load search took over {max_trials} trials")
            done[streams] = trial(streams)
        return done[streams].passes(target)

    for target in sorted(targets, reverse=True):
        low, high = _bracket(list(done.values()), target)
        streams = low * 2 if low else max(1, min(start, MAX_STREAMS))
        while high is None and streams <= MAX_STREAMS:  # up: double while it passes
            if passes(streams, target):
                low, streams = streams, streams * 2
            else:
                high = streams
        if high is None:
            continue  # passes at MAX_STREAMS: no trial says where it stops
        while low == 0 and high > 1:  # down: halve while it fails
            streams = high // 2
            if passes(streams, target):
                low = streams
            else:
                high = streams
        while high - low > max(1, resolution * low) and low > 0:
            middle = (low + high) // 2
            if passes(middle, target):
                low = middle
            else:
                high = middle
    return list(done.values())


def _bracket(trials: list[LoadTrial], target: float) -> tuple[int, int | None]:
    """(the largest N that passes below the smallest that fails, the smallest N above it that
    does not pass, or None)."""
    found = capacity(trials, target).streams
    above = [t.streams for t in trials if t.streams > found and not t.passes(target)]
    return found, min(above, default=None)
