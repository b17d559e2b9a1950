"""A parallel-in-time sweep document whose rows follow a known iteration law exactly, for the
prediction's tests: written with `law_file(folder)`, read with --law."""

from __future__ import annotations

import math
from pathlib import Path

from harness.sweeps import parallel_in_time as sweep
from harness.sweeps.iteration_law import Law

LAWS = [Law(cell, "quasi-newton", 2.0, 0.2, 1.5, 0, 0, 0) for cell in ("rnn", "gru", "lstm")] + [
    Law(cell, "newton", 3.0, 0.5, 1.0, 0, 0, 0) for cell in ("rnn", "gru", "lstm")
]
LLES = (-1.5, -1.0, -0.6, -0.4, -0.25)


def rows() -> list[dict]:
    out = []
    for law in LAWS:
        for lle in LLES:
            out.append(
                {
                    "grid": "gain",
                    "cell": law.cell,
                    "method": law.method,
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
                    "lle": lle,
                    "converged": True,
                    "iterations": math.ceil(law.unbounded(lle, 1e-12)),
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
            )
    return out


def law_file(folder: Path) -> Path:
    path = folder / "law-sweep.json"
    environment = {"machine": "law-box", "git": {"commit": "feedc0ffee"}}
    path.write_text(sweep.dumps(sweep.document(sweep.Grid(), rows(), environment, 1.0)))
    return path
