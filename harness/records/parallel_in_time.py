"""Parallel-in-time files as typed records: a sweep (`rnnbench parallel-in-time --sweep GRID
--json FILE`, kind rnnbench-parallel-in-time, schema version 2; 1 is read too), the counts of
Newton / quasi-Newton solves over a grid of cells, T and gains, with the iteration law fitted on
them (harness/sweeps/iteration_law.py); one solve (`rnnbench parallel-in-time --json FILE`), a
model solved in parallel over time, held to its sequential run, timed against the step loop
beside its prediction; and a prediction alone (`--predict --json`). Each is validated before it
is written and when it is read; a value that is not finite is written as null."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, ValidationError, model_validator

from harness.json_values import JsonObject
from harness.records.base import Finite, NonNegative, Record, Size
from harness.records.errors import one_line
from harness.records.prediction import PredictedSolve, Prediction
from harness.records.results import Check, Environment
from harness.records.store import ResultsError

KIND: Final = "rnnbench-parallel-in-time"
COMMAND: Final = "parallel-in-time"
# 2: a sweep's rows carry their residuals and the law's predicted iterations, the sweep its law;
# a solve its prediction and its time against the step loop. 3: a prediction's counted
# iterations carry float64's count and the stall. 1 and 2 are read too.
SCHEMA_VERSION: Final = 3
READABLE: Final = (1, 2, 3)
Method = Literal["newton", "quasi-newton"]
Count = Annotated[int, Field(ge=0)]
Interval3 = tuple[Finite, Finite, Finite]


class SweepRow(Record):
    """One point of the grid: a model (cell, H, I, seed, R x gain) on B x T inputs, solved
    once in float64 (status solved: converged or not) or skipped, with the reason."""

    grid: Literal["steps", "gain"] = Field(description="which grid: T at gain 1, or the gains")
    cell: str = Field(description="rnn | lstm | gru")
    method: Method
    hidden: Size
    input_size: Size
    batch: Size
    steps: Size = Field(description="T")
    gain: Finite = Field(description="R is scaled by it")
    seed: Count
    dtype: str = Field("float64", description="the solve's precision")
    tol: Finite | None = Field(None, description="stop when no state moves more than this")
    max_iter: int | None = Field(None, ge=1, description="the method's iteration limit")
    lle: Finite | None = Field(description="largest Lyapunov exponent per step; null: not finite")
    status: Literal["solved", "skipped"] = Field(
        description="solved (converged or not), or skipped: over a size limit (reason)"
    )
    converged: bool | None = Field(description="null when skipped")
    iterations: Count | None = Field(description="updates from an all-zero guess; null if none")
    reason: str | None = Field(description="why it did not converge or was skipped")
    max_abs_error: Finite | None = Field(
        description="against the sequential float64 run; null: not compared or not finite"
    )
    parity_passed: bool | None = Field(None, description="held to the sequential run")
    seconds: NonNegative | None = Field(description="informational: the solve's wall time")
    work_per_iteration: Finite = Field(description="one iteration over the sequential pass")
    work_multiplier: Finite | None = Field(description="all the work over the sequential pass")
    depth_per_iteration: Count
    depth: Count | None = Field(description="rounds of dependent operations")
    sequential_depth: Count = Field(description="the sequential pass's rounds: T")
    residuals: list[Finite | None] | None = Field(
        None, description="max |change| at each iteration (schema 2); null: not solved"
    )
    law_role: Literal["fit", "held out"] | None = Field(
        None, description="whether the iteration law was fitted on this row (schema 2)"
    )
    predicted_iterations: Count | None = Field(
        None, description="the sweep's law's count for this row; null: none, or no convergence"
    )

    @property
    def solved(self) -> bool:
        """Converged to the sequential run: the stopping rule held and so did parity (a row
        whose change fell under tol while still off the sequential run does not count)."""
        return bool(self.converged) and self.parity_passed is not False

    @property
    def off_run(self) -> bool:
        """Converged by the stopping rule, but off the sequential run."""
        return bool(self.converged) and self.parity_passed is False


class SweepGrid(Record):
    """The grid swept (harness.sweeps.parallel_in_time.Grid)."""

    cells: list[str]
    methods: list[Method]
    hidden: list[Size]
    steps: list[Size]
    wide_hidden: list[Size]
    wide_steps: list[Size]
    gains: list[Finite]
    gain_steps: Size
    gain_hidden: Size
    input_size: Size
    batch: Size
    seed: Count
    tol: Finite
    max_iter: dict[str, int] = Field(description="method -> its iteration limit")
    dense_limit_mib: Size
    dense_limit_gflop: Finite


class IterationLaw(Record):
    """One (cell, method)'s fitted law (harness/sweeps/iteration_law.py); rms and worst are of
    ln(predicted / counted) over the n points it was fitted on."""

    cell: str
    method: Method
    c: Finite
    a: Finite
    p: Finite
    n: Count
    rms: Finite
    worst: Finite
    formula: str


class LawResiduals(Record):
    """The laws against the counted points of one role (fit or held out)."""

    points: Count
    median_abs_log_error: Finite | None = None
    worst_abs_log_error: Finite | None = None
    within_2x: Finite | None = Field(None, description="the share within a factor of 2")


class SweepLaw(Record):
    """The iteration laws fitted on a sweep's rows, with their residuals."""

    doc: str = Field(description="the law and how it is fitted")
    fit_on: str
    held_out: str
    laws: list[IterationLaw]
    residuals: dict[Literal["fit", "held out"], LawResiduals]


class SweepDocument(Record):
    """A parallel-in-time sweep: counts, not timings (seconds are informational)."""

    kind: Literal["rnnbench-parallel-in-time"] = KIND
    schema_version: Literal[1, 2, 3] = Field(
        SCHEMA_VERSION, description="versions 1 and 2 are read too"
    )
    created: str | None = Field(None, description="UTC, ISO 8601")
    environment: Environment
    commit: str | None = Field(None, description="the git commit it ran at")
    grid: SweepGrid | None = None
    counting: str | None = Field(None, description="how work and depth are counted")
    wall_s: NonNegative | None = None
    law: SweepLaw | None = Field(None, description="fitted on the rows (schema 2)")
    rows: list[SweepRow]

    @property
    def machine(self) -> str:
        return self.environment.machine or "?"


class LayerSolve(Record):
    """One (layer, direction) recurrence of a solve."""

    layer: Count
    direction: str
    converged: bool
    iterations: Count | None
    residuals: list[Finite | None] = Field(description="max |change| at each iteration")
    reason: str | None = None


class VersusStepLoop(Record):
    """A solve timed against the step loop it replaces, in interleaved rounds in one process
    (harness/predict/versus_loop.py); the verdict is the ratio's interval's."""

    backend: str = Field(description="the backend whose step loop it ran against")
    rounds: Size
    solve_s: list[NonNegative]
    step_loop_s: list[NonNegative]
    solve_ci: Interval3 = Field(description="median [95% interval], seconds")
    step_loop_ci: Interval3
    ratio_ci: Interval3 = Field(description="solve / step loop, paired by round")
    verdict: Literal["wins", "loses", "too close to call"]


class SolveDocument(Record):
    """`rnnbench parallel-in-time --json`: one model solved in parallel over time."""

    command: Literal["parallel-in-time"] = COMMAND
    schema_version: Literal[1, 2, 3] = Field(
        SCHEMA_VERSION, description="versions 1 and 2 are read too"
    )
    model: JsonObject = Field(description="the model's spec (harness ModelSpec)")
    source: str = Field(description="where the model came from: a file, or the flags")
    steps: Size
    batch: Size
    method: Method
    dtype: str = Field(description="float64 | float32")
    device: str = Field(description="cpu | cuda")
    framework: str = Field(description="numpy | torch")
    tol: Finite
    max_iter: Size
    lle: Finite | None = Field(description="largest Lyapunov exponent per step")
    lle_of: str = Field(description="the layer and direction the exponent is of")
    lle_per_sample: list[Finite | None]
    converged: bool
    iterations: Count | None
    reason: str | None
    residuals: list[Finite | None] = Field(description="max |change| at each iteration")
    residuals_of: str
    solves: list[LayerSolve]
    max_abs_error: Finite | None = Field(description="against the sequential run")
    parity: list[Check] = Field(description="the outputs against the sequential run")
    seconds: NonNegative
    iteration: str | None = Field(
        None, description="which implementation of the iteration ran; null: not recorded (v1)"
    )
    prediction: PredictedSolve | None = Field(
        None, description="the solve as predicted before it ran; null: none (prediction_note)"
    )
    prediction_note: str | None = Field(None, description="where it came from, or why none")
    versus_step_loop: VersusStepLoop | None = Field(
        None, description="timed against the step loop; null: it did not solve it"
    )

    @model_validator(mode="after")
    def _converged_counts(self) -> SolveDocument:
        if self.converged and self.iterations is None:
            raise ValueError("converged without a count of iterations")
        return self


class PredictionDocument(Record):
    """`rnnbench parallel-in-time --predict --json`: a model's solves predicted, none run."""

    command: Literal["parallel-in-time"] = COMMAND
    schema_version: Literal[2, 3] = Field(SCHEMA_VERSION, description="version 2 is read too")
    model: JsonObject = Field(description="the model's spec (harness ModelSpec)")
    source: str = Field(description="where the model came from: a file, or the flags")
    steps: Size
    batch: Size
    method: Method = Field(description="the method a solve would have run (--method)")
    dtype: str = Field(description="float64 | float32")
    device: str = Field(description="cpu | cuda")
    framework: str = Field(description="numpy | torch")
    tol: Finite
    max_iter: Size
    prediction: Prediction


def is_sweep(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == KIND


def is_solve_record(doc: Any) -> bool:
    """A `rnnbench parallel-in-time --json` record: a solve, or a prediction alone."""
    return isinstance(doc, dict) and doc.get("command") == COMMAND


def check_solve_record(doc: Any, path: str | Path) -> SolveDocument | PredictionDocument:
    """The typed solve (it has `converged`) or prediction, else a ResultsError of one line."""
    version = doc.get("schema_version", 1) if isinstance(doc, dict) else None  # 1: a default
    if not is_solve_record(doc) or version not in READABLE:
        raise ResultsError(
            f"{path}: not a parallel-in-time record this rnnbench reads (command "
            f"{COMMAND!r}, schema_version {', '.join(map(str, READABLE))}; it has "
            f"{version!r})"
        )
    typed: type[SolveDocument | PredictionDocument] = (
        SolveDocument if "converged" in doc else PredictionDocument
    )
    try:
        return typed.model_validate(doc)
    except ValidationError as exc:
        raise ResultsError(one_line(exc, f"parallel-in-time record {path} is corrupt")) from None


def check_sweep(doc: Any, path: str | Path) -> SweepDocument:
    """The typed sweep if `doc` is one this rnnbench reads, else a ResultsError of one line
    naming the file, the field and what is allowed."""
    if not is_sweep(doc):
        raise ResultsError(f"{path} is not a parallel-in-time sweep (kind {KIND!r} missing)")
    version = doc.get("schema_version")
    if version not in READABLE:
        raise ResultsError(
            f"parallel-in-time sweep {path} has schema_version {version!r}: this rnnbench reads "
            f"{', '.join(map(str, READABLE))}"
        )
    try:
        return SweepDocument.model_validate(doc)
    except ValidationError as exc:
        raise ResultsError(one_line(exc, f"parallel-in-time sweep {path} is corrupt")) from None


def dumps(doc: SweepDocument | SolveDocument | PredictionDocument) -> str:
    """The record as JSON, validated again first: what is written is what a reader accepts."""
    data = doc.model_dump(mode="json")
    try:
        type(doc).model_validate(data)
    except ValidationError as exc:
        raise ResultsError(one_line(exc, f"refusing to write a {KIND} record")) from None
    return json.dumps(data, indent=1, allow_nan=False) + "\n"
