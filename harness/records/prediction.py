"""A parallel-in-time solve predicted before it runs (harness/predict): the iterations from the
model's largest Lyapunov exponent by the sweep's iteration law, the work they cost, the time of
one iteration and of the step loop as probed on this machine at the model's shape, and so the
solve's time against the step loop's. Recorded beside the measurement in a newton /
quasi-newton case (Solve.prediction) and by `rnnbench parallel-in-time --predict --json`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from harness.records.base import Finite, NonNegative, Record

Positive = Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]
PREDICTED_VERDICTS = ("wins", "loses", "does not converge")


class PredictedSolve(Record):
    """One method at one sequence length T."""

    method: Literal["newton", "quasi-newton"]
    steps: int = Field(ge=1, description="T")
    iterations: int | None = Field(
        None, ge=1, description="the predicted count (T + 1 at most); null: not to converge"
    )
    iterations_unbounded: Finite | None = Field(
        None, description="the count without the T + 1 cap; null where it is infinite"
    )
    iterations_from: Literal["law", "counted", "rounding floor", "first iterate"] | None = Field(
        None,
        description="law: the sweep's law at the model's exponent; counted: read from the "
        "model's own solves at Prediction.counted's (or, in older files, newton_counted's) "
        "lengths; rounding floor: Newton's count from the model's sequential states "
        "(Prediction.rounding_floor), above the law's; first iterate: predicted to overflow at "
        "iteration 1 (Prediction.first_iterate); null: files before it",
    )
    reason: str | None = Field(None, description="why it is predicted not to converge")
    work_multiplier: Finite | None = Field(
        None, ge=0, description="the solve's FLOPs over the step loop's, at those iterations"
    )
    iteration_s: Positive = Field(description="one iteration, every layer and direction, probed")
    setup_s: NonNegative = Field(
        description="once per solve: input projection, buffers, outputs (probed: a one-iteration "
        "solve less one iteration), every layer and direction"
    )
    solve_s: Positive | None = Field(None, description="setup_s + iterations x iteration_s")
    step_loop_s: Positive = Field(description="the step loop it replaces, probed")
    ratio: Positive | None = Field(None, description="solve_s / step_loop_s")
    verdict: Literal["wins", "loses", "does not converge"]
    break_even_steps: Finite | None = Field(
        None,
        ge=1,
        description="where its first stretch of predicted wins (an octave of T at least, or up "
        "to 65536) starts; null: none (older files: the smallest T from which it wins up to "
        "65536)",
    )
    wins_up_to_steps: Finite | None = Field(
        None,
        ge=1,
        description="where that stretch ends; null: it runs to 65536, there is none, or an "
        "older file",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PredictedSolve:
        converges = self.iterations is not None
        if converges == (self.reason is not None):
            raise ValueError("a predicted solve has iterations or a reason, not both")
        if converges != (self.solve_s is not None and self.ratio is not None):
            raise ValueError("solve_s and ratio are set exactly when iterations are")
        if self.iterations is not None and self.iterations > self.steps + 1:
            raise ValueError(f"iterations = {self.iterations}: allowed at most T + 1")
        expected = (
            "does not converge" if self.ratio is None else ("wins" if self.ratio < 1 else "loses")
        )
        if self.verdict != expected:
            raise ValueError(f"verdict = {self.verdict!r}: the ratio says {expected!r}")
        return self


class CountedAt(Record):
    steps: int = Field(ge=1, description="T of the counting solve")
    iterations: int | None = Field(None, ge=1, description="null: not converged within T + 1")


class CountedIterations(Record):
    """A method's iterations counted by solving the model (in its own dtype) at a few short
    lengths; where the model is not float64, the longest also in float64 (the stall check)."""

    method: Literal["newton", "quasi-newton"]
    batch: int = Field(ge=1, description="the input's columns the counting solves took")
    counts: list[CountedAt]
    float64_iterations: int | None = Field(
        None,
        ge=1,
        description="float64's count at the longest length; null: a float64 model, not "
        "afforded, not converged, or files before schema 3",
    )
    stalled: bool | None = Field(
        None,
        description="true: rounding stalled the model's dtype's change above tol at the longest "
        "length (its count well above float64's), so every longer T is predicted at T + 1; null: "
        "files before schema 3",
    )


class FloorRunAt(Record):
    steps: int = Field(ge=1, description="T of the run")
    iterations: int | None = Field(
        None, ge=1, description="the change first <= tol after these; null: not within `run`"
    )
    run: int = Field(ge=1, description="iterations run")
    first_change: Finite | None = Field(
        None, ge=0, description="max |change| of the first iteration (the floor's size)"
    )
    stopped: Literal["converged", "deadline", "non-finite", "T + 1"] | None = Field(
        None,
        description="why the run ended: its change <= tol, the budget spent, a non-finite "
        "value, or T + 1 iterations run; null: an older file",
    )


class RoundingFloor(Record):
    """Newton started at the model's own sequential states, in its dtype (layer 0, forward),
    counted until its change is <= tol, at each predicted T the budget allowed
    (harness/predict/rounding_floor.py): what rounding alone costs it."""

    batch: int = Field(ge=1, description="the input's columns the runs took")
    runs: list[FloorRunAt]


class FirstIterate(Record):
    """How far a solve's first iterate grows (backends/parallel_in_time/first_iterate.py): the
    Jacobians' products at s = 0, layer 0 forward, on the input's first steps. Where the
    largest span's growth within T passes the dtype's largest value, the solve is predicted to
    end on a non-finite value at iteration 1."""

    steps: int = Field(ge=1, description="the input's steps it was measured over")
    dense_log_growth: Finite = Field(
        ge=0, description="the largest log growth of Newton's (dense) products over any span"
    )
    diagonal_log_growth: Finite = Field(
        ge=0, description="the same of quasi-Newton's (diagonal) products, largest component"
    )
    dense_per_step: Finite = Field(description="the mean log growth a step, read on past them")
    diagonal_per_step: Finite
    log_limit: Finite = Field(description="the log of the model dtype's largest finite value")


class Prediction(Record):
    """A whole prediction: the model's exponent, the law it was read with, what was probed, and
    each method at each T."""

    lle: Finite | None = Field(description="largest Lyapunov exponent, layer 0 forward, per step")
    lle_steps: int = Field(ge=1, description="the steps it was estimated over")
    laws: dict[str, str] = Field(description="method -> the iteration law's formula")
    law_source: str = Field(description="the sweep the laws were fitted on, and its commit")
    backend: str = Field(description="the backend whose step loop and solver were probed")
    tol: Positive
    max_iter: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="method -> its iteration limit; null: T + 1 at each T (the engine's)"
    )
    probe_lengths: list[int] = Field(description="the T at which iterations and loop were timed")
    counted: CountedIterations | None = Field(
        None,
        description="quasi-Newton iterations counted on the model itself (harness/predict/"
        "counted.py); null: not counted (Newton only, a variant, an exponent >= 0, older files)",
    )
    newton_counted: CountedIterations | None = Field(
        None,
        description="older files only: Newton counted at one short length in the model's dtype "
        "and float64 (the stall check rounding_floor replaced)",
    )
    rounding_floor: RoundingFloor | None = Field(
        None,
        description="Newton's floor runs (harness/predict/rounding_floor.py); null: not "
        "afforded, not predicted, an exponent >= 0, older files",
    )
    first_iterate: FirstIterate | None = Field(
        None, description="the first iterate's growth; null: not measured, older files"
    )
    seconds: NonNegative = Field(description="what making the prediction took")
    solves: list[PredictedSolve]
