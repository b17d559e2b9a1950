"""Seconds of one call at the probed sequence lengths, read at any T through the affine law
seconds = a + b * work(T), work a FLOP count (or T itself): a, the fixed cost of a call
(dispatch, allocation), b, the cost per unit of work. Fitted to every probed length at once,
each weighted by its own size (least squares of the relative error), so that one length timed
while the machine was busy moves the law less than it would move a line through two points;
a and b are held >= 0 (a fit that wants a < 0 is refitted through the origin)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


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

    def law(self, work: Callable[[float], float] = float) -> tuple[float, float]:
        """(a, b) of seconds = a + b * work(T)."""
        w = np.array([work(T) for T in self.lengths], float)
        t = np.array(self.seconds, float)
        if len(t) == 1:
            return 0.0, float(t[0] / w[0])
        design = np.stack([np.ones_like(w), w], axis=1) / t[:, None]
        (a, b), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
        if a < 0 or b < 0:
            a, b = 0.0, float(np.sum(w / t) / np.sum((w / t) ** 2))  # through the origin
        return float(a), float(b)

    def at(self, steps: float, work: Callable[[float], float] = float) -> float:
        a, b = self.law(work)
        return a + b * work(steps)
