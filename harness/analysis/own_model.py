"""A user's model (`rnnbench bench --model`): its timings apart from the built-in suites', one
view per (machine, model): every backend's median, the per-step fit, the penalty against the
same FLOPs as one product, and the parallel-in-time verdict on the model's own weights (its
largest Lyapunov exponent, Newton and quasi-Newton iterations, solve time against the step
loop, timed in one interleaved group)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harness.analysis.fits import Fit, step_fits
from harness.analysis.parallel_in_time import TimedSolve, timed
from harness.analysis.penalty import PenaltyRow, penalties
from harness.analysis.rows import TimedRow
from harness.json_values import JsonObject


@dataclasses.dataclass(frozen=True)
class OwnModel:
    """One user's model on one machine: every backend's forward rows (fastest first at each
    shape), the fits of its steps, its penalties and its solves in parallel over time."""

    machine: str
    model: str
    spec: JsonObject  # its ModelSpec as the results file records it (JSON)
    file: str
    backends: list[TimedRow]
    fits: list[Fit]
    penalties: list[PenaltyRow]
    parallel_in_time: list[TimedSolve]


def split(table: Sequence[TimedRow]) -> tuple[list[TimedRow], list[TimedRow]]:
    """(the built-in cases' rows, a user's model's rows)."""
    return [r for r in table if not r.model], [r for r in table if r.model]


def analyse(table: Sequence[TimedRow]) -> list[OwnModel]:
    """One entry per (machine, model) among the rows of users' models."""
    by_model: dict[tuple[str, str], list[TimedRow]] = {}
    for row in table:
        by_model.setdefault((row.machine, row.model or ""), []).append(row)
    out = []
    for (machine, name), rows in sorted(by_model.items()):
        forward = [r for r in rows if r.mode == "forward"]
        found = penalties(rows)
        out.append(
            OwnModel(
                machine,
                name,
                rows[0].model_spec or {},
                rows[0].model_file or "",
                sorted(forward, key=lambda r: (r.threads, r.batch, r.steps, r.median)),
                step_fits(forward),
                found,
                timed(rows, found),
            )
        )
    return out
