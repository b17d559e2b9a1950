"""Predicted against measured: each timed newton / quasi-newton case whose record holds the
prediction made before it ran (harness/predict), its error, and where it missed by more than 2x,
which term missed; the break-even T predicted against the one measured; the sweep's iteration
law with its residuals on the points it was fitted on and on those held out.

Which cases are held out: every timed case. The law is fitted on the sweep's counted
iterations alone (harness/sweeps/iteration_law.py: the gain grid and the T grid at the smallest
H), and the time per iteration and the step loop's are probed at the case's shape before the
solve is timed; no timing of any case enters a prediction.

The error of a case: predicted ratio / measured ratio (solve / step loop). It splits exactly into
three factors: iterations predicted / counted (and so the work), one iteration's time predicted /
measured (the solve's rate; measured as (solve - predicted setup) / iterations), and the
step loop's time measured / predicted (its rate). A case missed by more than 2x names the
factor furthest from 1, with both its values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from harness.analysis.parallel_in_time_rows import TimedSolve
from harness.predict.verdict import agrees
from harness.records.parallel_in_time import SweepDocument, SweepLaw
from harness.records.prediction import PredictedSolve
from harness.stats import format_seconds

WITHIN = 2.0  # the stated error: within 2x
MEDIAN_WITHIN = 1.5  # and the median |log ratio| within log 1.5
SHARE_WITHIN = 0.8
TERMS = ("iterations", "iteration time", "step-loop time")


@dataclasses.dataclass(frozen=True)
class Term:
    """One term of the prediction: its predicted and measured value, and its factor in the
    error (predicted / measured for iterations and an iteration's time, measured / predicted
    for the step loop's time)."""

    predicted: float
    measured: float
    factor: float


@dataclasses.dataclass(frozen=True)
class ComparedSolve:
    """A timed solve beside the prediction made before it ran: the predicted ratio and
    iterations, the error (predicted ratio / measured), whether it is within 2x, each term's
    factor, the term that missed beyond 2x, and whether the verdicts agree."""

    solve: TimedSolve
    predicted: PredictedSolve
    predicted_ratio: float
    predicted_iterations: int
    error: float
    within: bool
    factors: dict[str, Term]
    missed: str | None
    agrees: bool | None


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """How the held-out predictions landed."""

    cases: int
    within_2x: float  # the share within 2x
    median_abs_log_error: float
    median_error_factor: float
    met: bool  # the stated target
    verdicts_told: int  # cases whose measured interval settles the verdict
    verdicts_agree: int


@dataclasses.dataclass(frozen=True)
class BreakEven:
    """One series timed at two T or more: the break-even T measured and predicted."""

    machine: str
    backend: str
    model: str
    cell: str
    mode: str
    batch: int
    hidden: int
    steps: list[int]
    measured: float | None
    predicted: float | None  # the median of `predicted_each`
    ratio: float | None  # predicted / measured
    within: bool
    # every T timed won: the break-even lies at or below `measured`, the shortest T timed, and a
    # prediction is within 2x when it lies at or below twice that
    at_most: bool = False
    # the break-even each case predicted before its run from its own probe, shortest T first,
    # cases without a prediction left out (None: none predicted up to MAX_STEPS)
    predicted_each: tuple[float | None, ...] = ()

    def within_each(self) -> int:
        """How many of the cases' own predictions lie within 2x (as `within` judges; one that
        predicted no break-even where one was measured is not)."""
        if not self.measured:
            return 0
        return sum(
            p is not None and _within(p / self.measured, self.at_most) for p in self.predicted_each
        )


@dataclasses.dataclass(frozen=True)
class LawOfSweep:
    """A sweep's laws and residuals, as the sweep recorded them (schema 2)."""

    machine: str
    commit: str | None
    law: SweepLaw


@dataclasses.dataclass(frozen=True)
class PredictionAnalysis:
    rows: list[ComparedSolve]
    summary: HeldOut | None
    break_even: list[BreakEven]
    laws: list[LawOfSweep]


def compared(timed: Sequence[TimedSolve]) -> list[ComparedSolve]:
    """The timed solves that carry a prediction with a ratio, each compared with it."""
    out = []
    for t in timed:
        predicted = t.prediction
        if predicted is None or predicted.ratio is None or predicted.iterations is None:
            continue
        error = predicted.ratio / t.time_ratio_ci[0]
        factors = _factors(t, predicted, predicted.iterations)
        out.append(
            ComparedSolve(
                solve=t,
                predicted=predicted,
                predicted_ratio=predicted.ratio,
                predicted_iterations=predicted.iterations,
                error=error,
                within=1 / WITHIN <= error <= WITHIN,
                factors=factors,
                missed=_missed(error, factors),
                agrees=agrees(t.verdict, predicted.verdict),
            )
        )
    return out


def _factors(t: TimedSolve, predicted: PredictedSolve, iterations: int) -> dict[str, Term]:
    """Each term's predicted and measured value and its factor in the error (the product of
    the three factors is the error where the setup is negligible)."""
    solve, loop = t.median_ci[0], t.step_loop_ci[0]
    per_iteration = max(solve - predicted.setup_s, solve * 1e-3) / t.iterations
    terms = {
        "iterations": (float(iterations), float(t.iterations)),
        "iteration time": (predicted.iteration_s, per_iteration),
        "step-loop time": (predicted.step_loop_s, loop),
    }
    out = {}
    for name, (guess, found) in terms.items():
        factor = guess / found if name != "step-loop time" else found / guess
        out[name] = Term(guess, found, factor)
    return out


def _missed(error: float, factors: dict[str, Term]) -> str | None:
    if 1 / WITHIN <= error <= WITHIN:
        return None
    worst = max(TERMS, key=lambda name: abs(math.log(factors[name].factor)))
    guess, found = factors[worst].predicted, factors[worst].measured
    if worst == "iterations":
        return f"iterations (predicted {guess:.0f}, counted {found:.0f})"
    return f"{worst} (predicted {format_seconds(guess)}, measured {format_seconds(found)})"


def summary(rows: Sequence[ComparedSolve]) -> HeldOut | None:
    """How the held-out predictions landed: count, share within 2x, median |log error|."""
    if not rows:
        return None
    errors = sorted(abs(math.log(r.error)) for r in rows)
    half = len(errors) // 2
    median = errors[half] if len(errors) % 2 else sum(errors[half - 1 : half + 1]) / 2
    share = sum(r.within for r in rows) / len(rows)
    told = [r.agrees for r in rows if r.agrees is not None]
    return HeldOut(
        cases=len(rows),
        within_2x=share,
        median_abs_log_error=median,
        median_error_factor=math.exp(median),
        met=share >= SHARE_WITHIN and median <= math.log(MEDIAN_WITHIN),
        verdicts_told=len(told),
        verdicts_agree=sum(told),
    )


def break_evens(timed: Sequence[TimedSolve]) -> list[BreakEven]:
    """Per (machine, backend, model, cell, method, B, H, threads) timed at two T or more: the
    break-even T measured (where the measured ratio crosses 1 between two timed T, log-linear;
    None if it does not) and predicted: the median of the predictions each case made before its
    run from its own probe of the machine (a break-even is a property of the model and the
    machine, not of one T; one probe disturbed by load moved one case's from 69 to 158 where
    its two siblings said 69), none counting as beyond every T."""
    groups: dict[tuple[str, str, str, str, str, int, int, int], list[TimedSolve]] = {}
    for t in timed:
        where = (t.machine, t.backend, t.model, t.cell, t.mode, t.batch, t.hidden, t.threads)
        groups.setdefault(where, []).append(t)
    out = []
    for where, rows in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        rows = sorted(rows, key=lambda t: t.steps)
        if len(rows) < 2:
            continue
        each = tuple(t.prediction.break_even_steps for t in rows if t.prediction is not None)
        points = [(t.steps, t.time_ratio_ci[0]) for t in rows]
        measured = crossing(points)
        at_most = all(ratio < 1 for _, ratio in points)
        predicted = _median_steps(each) if each else None
        ratio = None if measured is None or predicted is None else predicted / measured
        machine, backend, model, cell, mode, batch, hidden, _ = where
        out.append(
            BreakEven(
                machine=machine,
                backend=backend,
                model=model,
                cell=cell,
                mode=mode,
                batch=batch,
                hidden=hidden,
                steps=[t.steps for t in rows],
                measured=measured,
                predicted=predicted,
                ratio=ratio,
                within=ratio is not None and _within(ratio, at_most),
                at_most=at_most,
                predicted_each=each,
            )
        )
    return out


def _within(ratio: float, at_most: bool) -> bool:
    return ratio <= WITHIN if at_most else 1 / WITHIN <= ratio <= WITHIN


def _median_steps(each: Sequence[float | None]) -> float | None:
    """The median of the predicted break-evens, None (no break-even) ranking above any T: of an
    even count the geometric mean of the two middle ones, None where either is (robust to one
    disturbed probe from three cases on)."""
    ranked = sorted(each, key=lambda p: math.inf if p is None else p)
    low, high = ranked[(len(ranked) - 1) // 2], ranked[len(ranked) // 2]
    return None if low is None or high is None else math.sqrt(low * high)


def crossing(points: list[tuple[int, float]]) -> float | None:
    """The smallest T from which the ratio stays under 1, interpolated in log T and log ratio
    between the two timed T around the crossing; None where the longest T does not win; the
    shortest T where every T wins (the break-even lies at or below it)."""
    if not points or points[-1][1] >= 1:
        return None
    first = len(points) - 1
    while first > 0 and points[first - 1][1] < 1:
        first -= 1
    if first == 0:
        return float(points[0][0])
    (t0, r0), (t1, r1) = points[first - 1], points[first]
    share = math.log(r0) / (math.log(r0) - math.log(r1))
    return math.exp(math.log(t0) + share * (math.log(t1) - math.log(t0)))


def law(sweeps: Sequence[SweepDocument]) -> list[LawOfSweep]:
    """Each sweep's laws and residuals, as the sweep recorded them (schema 2)."""
    return [LawOfSweep(doc.machine, doc.commit, doc.law) for doc in sweeps if doc.law]


def analyse(
    timed: Sequence[TimedSolve], sweeps: Sequence[SweepDocument]
) -> PredictionAnalysis | None:
    rows = compared(timed)
    laws = law(sweeps)
    if not rows and not laws:
        return None
    return PredictionAnalysis(rows, summary(rows), break_evens(timed), laws)
