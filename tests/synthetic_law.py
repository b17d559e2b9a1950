"""A parallel-in-time sweep document whose rows follow a known iteration law exactly, for the
prediction's tests: written with `law_file(folder)`, read with --law; `sweep_row(...)`: one
typed row, the fields a test does not name filled in."""

from __future__ import annotations

import math
from pathlib import Path

from harness.json_values import JsonObject
from harness.records.parallel_in_time import SweepRow, dumps
from harness.sweeps import parallel_in_time as sweep
from harness.sweeps.iteration_law import Law

LAWS = [Law(cell, "quasi-newton", 2.0, 0.2, 1.5, 0, 0, 0) for cell in ("rnn", "gru", "lstm")] + [
    Law(cell, "newton", 3.0, 0.5, 1.0, 0, 0, 0) for cell in ("rnn", "gru", "lstm")
]
LLES = (-1.5, -1.0, -0.6, -0.4, -0.25)
ROW: JsonObject = {
    "grid": "gain",
    "cell": "gru",
    "method": "quasi-newton",
    "hidden": 32,
    "input_size": 8,
    "batch": 2,
    "steps": 1024,
    "gain": 1.0,
    "seed": 0,
    "dtype": "float64",
    "tol": 1e-12,
    "max_iter": 1025,
    "status": "solved",
    "lle": -0.5,
    "converged": True,
    "iterations": 10,
    "reason": None,
    "max_abs_error": 1e-15,
    "parity_passed": True,
    "seconds": 0.01,
    "residuals": None,
    "work_per_iteration": 1.0,
    "work_multiplier": 1.0,
    "depth_per_iteration": 1,
    "depth": 1,
    "sequential_depth": 1024,
}


def sweep_row(**fields) -> SweepRow:
    return SweepRow.model_validate({**ROW, **fields})


def rows() -> list[JsonObject]:
    out = []
    for law in LAWS:
        for lle in LLES:
            iterations = math.ceil(law.unbounded(lle, 1e-12))
            out.append(
                {**ROW, "cell": law.cell, "method": law.method, "lle": lle}
                | {"iterations": iterations}
            )
    return out


def law_file(folder: Path) -> Path:
    path = folder / "law-sweep.json"
    environment = {"machine": "law-box", "cpu": {}, "git": {"commit": "feedc0ffee"}}
    path.write_text(dumps(sweep.document(sweep.Grid(), rows(), environment, 1.0)))
    return path
