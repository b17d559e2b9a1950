"""Seconds of one call at the probed sequence lengths, read at any T: exact at a probed length,
linear in the work between two, and beyond the ends along the line through the two nearest
(its slope the cost of a unit of work there); work is a FLOP count, or T itself. Piecewise, not
one law for all T: a call's cost per unit of work changes where its arrays leave a cache level
(dense Newton at H=64 costs 3.5x more a FLOP at T=256 than at T=64 on a 1 MiB L2), and a line
through every length at once would smear that step over all of them."""

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
        if len(lengths) == 1:
            return seconds[0] * work(steps) / work(lengths[0])
        right = bisect.bisect_left(lengths, steps)
        if right < len(lengths) and lengths[right] == steps:
            return seconds[right]
        right = min(max(right, 1), len(lengths) - 1)  # beyond an end: the two nearest
        left = right - 1
        w0, w1, w = work(lengths[left]), work(lengths[right]), work(steps)
        slope = (seconds[right] - seconds[left]) / (w1 - w0)
        if slope <= 0:  # timing noise: proportional to the work from the nearest
            near = left if abs(w - w0) < abs(w - w1) else right
            return seconds[near] * w / work(lengths[near])
        return max(seconds[left] + slope * (w - w0), seconds[0] * w / w0 if w < w0 else 0.0)
