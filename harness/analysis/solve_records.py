"""Records of `rnnbench parallel-in-time --json`, read by the report
(harness/records/parallel_in_time.py checks them): one solve timed against the step loop (its
verdict from the ratio's interval and the prediction made before it), or a prediction alone
(--predict). Each becomes rows of the parallel-in-time section."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from harness.records.parallel_in_time import PredictionDocument, SolveDocument
from harness.records.prediction import PredictedSolve
from harness.stats import Interval


@dataclasses.dataclass(frozen=True)
class SolveFile:
    """A `parallel-in-time --json` record given to the report, and its path."""

    path: str
    record: SolveDocument | PredictionDocument


@dataclasses.dataclass(frozen=True, kw_only=True)
class SoloWhere:
    """Which record, which model, which shape and where it ran."""

    path: str
    source: str
    cell: str
    hidden: int
    layers: int
    steps: int
    batch: int
    dtype: str
    backend: str  # device/framework
    lle: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class SoloSolve(SoloWhere):
    """A solve that was run, against the step loop where it converged."""

    method: str
    iterations: int | None
    converged: bool
    ratio_ci: Interval | None  # solve / step loop; None: not timed (it did not solve it)
    step_loop_ci: Interval | None
    verdict: str  # wins, loses, too close to call, or "did not solve it"
    prediction: PredictedSolve | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class SoloPrediction(SoloWhere):
    """One method at one T of a prediction alone."""

    solve: PredictedSolve

    @property
    def method(self) -> str:
        return self.solve.method


def rows(files: Sequence[SolveFile]) -> tuple[list[SoloSolve], list[SoloPrediction]]:
    """(one row per solve that was run, one row per method and T of each prediction alone)."""
    ran, predicted = [], []
    for file in files:
        doc, model = file.record, file.record.model
        where: dict[str, Any] = {
            "path": file.path,
            "source": doc.source,
            "cell": str(model["cell"]),
            "hidden": int(model["hidden_size"]),
            "layers": int(model["num_layers"]),
            "steps": doc.steps,
            "batch": doc.batch,
            "dtype": doc.dtype,
            "backend": f"{doc.device}/{doc.framework}",
        }
        if isinstance(doc, SolveDocument):
            timing = doc.versus_step_loop
            ran.append(
                SoloSolve(
                    **where,
                    lle=doc.lle,
                    method=doc.method,
                    iterations=doc.iterations,
                    converged=doc.converged,
                    ratio_ci=timing.ratio_ci if timing else None,
                    step_loop_ci=timing.step_loop_ci if timing else None,
                    verdict=timing.verdict if timing else "did not solve it",
                    prediction=doc.prediction,
                )
            )
            continue
        for solve in doc.prediction.solves:
            predicted.append(
                SoloPrediction(
                    **{**where, "steps": solve.steps}, lle=doc.prediction.lle, solve=solve
                )
            )
    return ran, predicted
