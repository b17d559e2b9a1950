"""Records of `rnnbench parallel-in-time --json`, read by the report: one solve timed against the
step loop (its verdict from the ratio's interval and the prediction made before it), or a
prediction alone (--predict). Each becomes rows of the parallel-in-time section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.model.spec import SpecError
from harness.records.prediction import PredictedSolve, Prediction

COMMAND = "parallel-in-time"
NEEDS = ("model", "source", "steps", "batch", "dtype", "framework", "device")


class SolveRecordError(SpecError):
    """A parallel-in-time record the report cannot read: one line, exit 2."""


def is_solve_record(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("command") == COMMAND


def check(doc: dict[str, Any], path: str | Path) -> dict[str, Any]:
    missing = [k for k in NEEDS if k not in doc]
    if missing:
        raise SolveRecordError(f"{path}: a parallel-in-time record lacks {', '.join(missing)}")
    try:
        if "converged" in doc:
            if doc.get("prediction") is not None:
                PredictedSolve.model_validate(doc["prediction"])
        else:
            Prediction.model_validate(doc.get("prediction"))
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise SolveRecordError(
            f"{path}: its prediction is not one this rnnbench reads: {first}"
        ) from None
    return {**doc, "path": str(path)}


def rows(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per solve that was run, one row per method and T of each prediction alone)."""
    ran, predicted = [], []
    for doc in records:
        model = doc["model"]
        where = {
            "path": doc["path"],
            "source": doc["source"],
            "cell": model["cell"],
            "hidden": model["hidden_size"],
            "layers": model["num_layers"],
            "steps": doc["steps"],
            "batch": doc["batch"],
            "dtype": doc["dtype"],
            "backend": f"{doc['device']}/{doc['framework']}",
        }
        if "converged" in doc:
            timing = doc.get("versus_step_loop")
            ran.append(
                {
                    **where,
                    "method": doc["method"],
                    "lle": doc.get("lle"),
                    "iterations": doc.get("iterations"),
                    "converged": doc["converged"],
                    "ratio_ci": tuple(timing["ratio_ci"]) if timing else None,
                    "step_loop_ci": tuple(timing["step_loop_ci"]) if timing else None,
                    "verdict": timing["verdict"] if timing else "did not solve it",
                    "prediction": doc.get("prediction"),
                }
            )
            continue
        prediction = doc["prediction"]
        for solve in prediction["solves"]:
            predicted.append({**where, "lle": prediction["lle"], **solve, "steps": solve["steps"]})
    return ran, predicted
