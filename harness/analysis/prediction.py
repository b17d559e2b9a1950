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

import math
from typing import Any

from harness.predict.verdict import agrees
from harness.stats import format_seconds

WITHIN = 2.0  # the stated error: within 2x
MEDIAN_WITHIN = 1.5  # and the median |log ratio| within log 1.5
SHARE_WITHIN = 0.8
TERMS = ("iterations", "iteration time", "step-loop time")
GROUP = ("machine", "backend", "model", "cell", "mode", "batch", "hidden", "threads")


def compared(timed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timed rows whose solve carries a prediction, each with the comparison added."""
    out = []
    for t in timed:
        predicted = t.get("prediction")
        if not predicted or predicted.get("ratio") is None:
            continue
        measured = t["time_ratio_ci"][0]
        error = predicted["ratio"] / measured
        factors = _factors(t, predicted)
        out.append(
            {
                **t,
                "predicted_ratio": predicted["ratio"],
                "predicted_iterations": predicted["iterations"],
                "error": error,
                "within": 1 / WITHIN <= error <= WITHIN,
                "factors": factors,
                "missed": _missed(error, factors),
                "agrees": agrees(t["verdict"], predicted["verdict"]),
            }
        )
    return out


def _factors(t: dict[str, Any], predicted: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each term's predicted and measured value and its factor in the error (the product of
    the three factors is the error where the setup is negligible)."""
    solve, loop = t["median_ci"][0], t["step_loop_ci"][0]
    per_iteration = max(solve - predicted["setup_s"], solve * 1e-3) / t["iterations"]
    terms = {
        "iterations": (predicted["iterations"], t["iterations"]),
        "iteration time": (predicted["iteration_s"], per_iteration),
        "step-loop time": (predicted["step_loop_s"], loop),
    }
    out = {}
    for name, (guess, found) in terms.items():
        factor = guess / found if name != "step-loop time" else found / guess
        out[name] = {"predicted": guess, "measured": found, "factor": factor}
    return out


def _missed(error: float, factors: dict[str, dict[str, float]]) -> str | None:
    if 1 / WITHIN <= error <= WITHIN:
        return None
    worst = max(TERMS, key=lambda name: abs(math.log(factors[name]["factor"])))
    guess, found = factors[worst]["predicted"], factors[worst]["measured"]
    if worst == "iterations":
        return f"iterations (predicted {guess:.0f}, counted {found:.0f})"
    return f"{worst} (predicted {format_seconds(guess)}, measured {format_seconds(found)})"


def summary(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How the held-out predictions landed: count, share within 2x, median |log error|."""
    if not rows:
        return None
    errors = sorted(abs(math.log(r["error"])) for r in rows)
    median = (
        errors[len(errors) // 2]
        if len(errors) % 2
        else sum(errors[len(errors) // 2 - 1 : len(errors) // 2 + 1]) / 2
    )
    share = sum(r["within"] for r in rows) / len(rows)
    told = [r["agrees"] for r in rows if r["agrees"] is not None]
    return {
        "cases": len(rows),
        "within_2x": share,
        "median_abs_log_error": median,
        "median_error_factor": math.exp(median),
        "met": share >= SHARE_WITHIN and median <= math.log(MEDIAN_WITHIN),
        "verdicts_told": len(told),
        "verdicts_agree": sum(told),
    }


def break_evens(timed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (machine, backend, model, cell, method, B, H, threads) timed at two T or more: the
    break-even T measured (where the measured ratio crosses 1 between two timed T, log-linear;
    None if it does not) and predicted (the prediction at the longest T timed)."""
    groups: dict[tuple, list[dict]] = {}
    for t in timed:
        where = tuple(t.get(f) for f in GROUP)
        groups.setdefault(where, []).append(t)
    out = []
    for where, rows in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        rows = sorted(rows, key=lambda t: t["steps"])
        if len(rows) < 2:
            continue
        longest = rows[-1].get("prediction") or {}
        measured = crossing([(t["steps"], t["time_ratio_ci"][0]) for t in rows])
        predicted = longest.get("break_even_steps")
        ratio = None if measured is None or predicted is None else predicted / measured
        out.append(
            {
                **dict(
                    zip(("machine", "backend", "model", "cell", "mode"), where[:5], strict=True)
                ),
                "batch": where[5],
                "hidden": where[6],
                "steps": [t["steps"] for t in rows],
                "measured": measured,
                "predicted": predicted,
                "ratio": ratio,
                "within": ratio is not None and 1 / WITHIN <= ratio <= WITHIN,
            }
        )
    return out


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


def law(sweeps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sweep's laws and residuals, as the sweep recorded them (schema 2)."""
    out = []
    for doc in sweeps:
        block = doc.get("law")
        if block:
            out.append(
                {
                    "machine": doc["environment"].get("machine", "?"),
                    "commit": doc.get("commit"),
                    **block,
                }
            )
    return out


def analyse(timed: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> dict[str, Any] | None:
    rows = compared(timed)
    laws = law(sweeps)
    if not rows and not laws:
        return None
    return {
        "rows": rows,
        "summary": summary(rows),
        "break_even": break_evens(timed),
        "laws": laws,
    }
