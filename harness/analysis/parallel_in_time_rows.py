"""The parallel-in-time section's rows: a sweep's points and series, what a solve costs
against the sequential pass, and a Newton / quasi-Newton timing beside its step loop with its
measured verdict and the prediction made before it ran (harness/analysis/parallel_in_time.py
builds them)."""

from __future__ import annotations

import dataclasses

from harness.records.parallel_in_time import SweepRow
from harness.records.prediction import PredictedSolve
from harness.stats import Interval


class SweepPoint(SweepRow):
    """A sweep's row with the machine it was counted on and the commit it ran at."""

    machine: str
    commit: str | None


@dataclasses.dataclass(frozen=True)
class SweepSeries:
    """Sweep points of one grid that share (machine, cell, method, hidden), and for the gain
    grid its T, sorted along T (the steps grid) or along the LLE (the gain grid)."""

    machine: str
    cell: str
    method: str
    hidden: int
    steps: int | None
    points: tuple[SweepPoint, ...]


@dataclasses.dataclass(frozen=True)
class Source:
    machine: str
    commit: str | None
    wall_s: float | None


@dataclasses.dataclass(frozen=True)
class Work:
    """What a solve costs against the sequential pass: per iteration and in all (its work
    multiplier), and its depth in rounds of dependent operations."""

    work_per_iteration: float
    work_multiplier: float
    depth: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class TimedSolve:
    """A converged Newton / quasi-Newton timing beside its step loop: the verdict of the ratio's
    interval (harness/predict/verdict.py) and the solve as predicted before it ran."""

    machine: str
    backend: str
    device: str | None
    mode: str
    cell: str
    dtype: str
    batch: int
    steps: int
    input_size: int
    hidden: int
    threads: int
    model: str
    iterations: int
    lle: float | None
    median_ci: Interval
    step_loop_ci: Interval
    time_ratio_ci: Interval  # solve / step loop
    work: Work
    parallelism_found_ci: Interval  # work multiplier / time ratio
    headroom_ci: Interval | None  # the step loop's penalty, where it holds
    verdict: str  # wins, loses or too close to call: the measured interval's alone
    prediction: PredictedSolve | None = None

    @property
    def work_multiplier(self) -> float:
        return self.work.work_multiplier


def headroom(work_multiplier: float, penalty: Interval | None) -> str:
    """The step loop's penalty against the work multiplier: whether what the loop leaves idle
    at the product's rate could pay for the work (a bound, not a verdict: the verdict is the
    measured ratio's)."""
    if penalty is None:
        return "no penalty measured at this shape"
    if penalty[1] > work_multiplier:
        return "penalty above the work multiplier"
    if penalty[2] < work_multiplier:
        return "penalty below the work multiplier: reclaiming it cannot pay for the work"
    return "penalty's interval reaches the work multiplier"


def predicted_verdict(solve: TimedSolve) -> str:
    return "not predicted" if solve.prediction is None else solve.prediction.verdict
