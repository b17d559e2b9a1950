"""Seconds of one call at the probed sequence lengths, read at any T: exact at a probed length,
linear in T between two, and beyond the longest its seconds scaled by the work (a FLOP count,
or T) at T over the work there: past a few thousand steps a call is throughput-bound. Below
the shortest probed length, the shortest's seconds scaled the same way."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class CostCurve:
    lengths: tuple[int, ...]
    seconds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.lengths or len(self.lengths) != len(self.seconds):
            raise ValueError("a cost curve needs one time per probed length, and one at least")
        if list(self.lengths) != sorted(set(self.lengths)) or self.lengths[0] < 1:
            raise ValueError(f"lengths {self.lengths}: allowed increasing integers >= 1")
        if not all(s > 0 for s in self.seconds):
            raise ValueError(f"seconds {self.seconds}: allowed > 0")

    def at(self, steps: float, work: Callable[[float], float] = float) -> float:
        lengths, seconds = self.lengths, self.seconds
        if steps >= lengths[-1]:
            return seconds[-1] * work(steps) / work(lengths[-1])
        if steps <= lengths[0]:
            return seconds[0] * work(steps) / work(lengths[0])
        right = bisect.bisect_left(lengths, steps)
        if lengths[right] == steps:
            return seconds[right]
        left = right - 1
        share = (steps - lengths[left]) / (lengths[right] - lengths[left])
        return seconds[left] + share * (seconds[right] - seconds[left])
