"""A user's model (`rnnbench bench --model`): its timings apart from the built-in suites', one
view per (machine, model): every backend's median, the per-step fit, the penalty against the
same FLOPs as one product, and the parallel-in-time verdict on the model's own weights (its
largest Lyapunov exponent, Newton and quasi-Newton iterations, solve time against the step
loop, timed in one interleaved group)."""

from __future__ import annotations

from typing import Any

from harness.analysis.fits import step_fits
from harness.analysis.parallel_in_time import timed
from harness.analysis.penalty import penalties


def split(table: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the built-in cases' rows, a user's model's rows)."""
    return [r for r in table if not r.get("model")], [r for r in table if r.get("model")]


def analyse(table: list[dict], benches: list[dict]) -> list[dict[str, Any]]:
    """One entry per (machine, model) among the rows of users' models."""
    by_model: dict[tuple[str, str], list[dict]] = {}
    for row in table:
        by_model.setdefault((row["machine"], row["model"]), []).append(row)
    out = []
    for (machine, name), rows in sorted(by_model.items()):
        forward = [r for r in rows if r["mode"] == "forward"]
        found = penalties(rows)
        out.append(
            {
                "machine": machine,
                "model": name,
                "spec": rows[0].get("model_spec", {}),
                "file": rows[0].get("model_file", ""),
                "backends": sorted(
                    forward, key=lambda r: (r["threads"], r["batch"], r["steps"], r["median"])
                ),
                "fits": step_fits(forward),
                "penalties": found,
                "parallel_in_time": timed({"rows": rows, "penalties": found}, benches),
            }
        )
    return out
