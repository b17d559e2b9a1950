"""Arrivals: a Poisson process of steps from N streams, each sending `rate_hz` steps a second.

The merged process of N independent Poisson streams is one Poisson process of rate N * rate,
each arrival's stream drawn uniformly (labelling each point of a Poisson process at random
splits it into independent Poisson processes). The count over the window is fixed at the
requested rate times the window, rounded, so that the offered rate is the requested one to
within one request: given its count, a Poisson process's arrival times are that many uniform
draws, sorted. Inter-arrival times are then exponential (mean 1 / rate, coefficient of
variation 1) up to that conditioning, for the merged process and for each stream alike."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Schedule:
    times: np.ndarray  # seconds from the trial's start, sorted
    streams: np.ndarray  # the stream each arrival belongs to (0 .. N-1)
    window_s: float
    requested_hz: float

    @property
    def offered_hz(self) -> float:
        return len(self.times) / self.window_s


def poisson(streams: int, rate_hz: float, window_s: float, seed: int) -> Schedule:
    """N streams' arrivals over [0, window_s), seeded."""
    if streams < 1 or rate_hz <= 0 or window_s <= 0:
        raise ValueError(f"streams {streams}, rate {rate_hz}, window {window_s}: all must be > 0")
    rng = np.random.default_rng(seed)
    requested = streams * rate_hz
    count = max(1, round(requested * window_s))
    times = np.sort(rng.uniform(0.0, window_s, count))
    return Schedule(times, rng.integers(0, streams, count), window_s, requested)


def inter_arrivals(schedule: Schedule, stream: int | None = None) -> np.ndarray:
    """Gaps between consecutive arrivals: of the merged process, or of one stream."""
    times = schedule.times if stream is None else schedule.times[schedule.streams == stream]
    return np.diff(times)
