"""How parallel can the recurrence be: Newton / quasi-Newton in time, measured.

Two sources. Sweep documents (`rnnbench parallel-in-time --sweep`): iteration counts against T
and against the largest Lyapunov exponent, with counted work and depth
(harness/sweeps/parallel_in_time_work.py).
Benchmark records of modes newton / quasi-newton: their time against the `forward` record of
the same backend, shape, threads and run (the step loop they replace), paired by round when the
two were timed in one interleaved group.

The break-even rule. A solve that does W times the sequential pass's work (its work multiplier)
beats the step loop only if it runs that work more than W times faster than the step loop runs
its own: only if the machine has more than W times the parallelism the step loop uses idle. The
measured speed ratio r = solve time / step-loop time gives the parallelism it found, W / r; it
wins where r < 1. The recurrence penalty (the step loop against the best product of the same
FLOPs) bounds what the step loop leaves idle at the machine's product rate: where the penalty is
under W, parallel in time cannot win by reclaiming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.analysis import prediction, solve_records
from harness.analysis.findings import Finding, instability
from harness.analysis.rows import key, ratio
from harness.model import flops
from harness.predict.verdict import measured_verdict
from harness.stats import Interval, format_ratio
from harness.sweeps import parallel_in_time_work as counts

TITLE = "Parallel in time: how parallel can this recurrence be"
METHODS = counts.METHODS


def solved(point: dict[str, Any]) -> bool:
    """Converged to the sequential run: the stopping rule held and so did parity (a sweep row
    whose change fell under tol while still off the sequential run does not count)."""
    return bool(point["converged"]) and point.get("parity_passed") is not False


def off_run(point: dict[str, Any]) -> bool:
    return bool(point["converged"]) and point.get("parity_passed") is False


def analyse(sweeps: list[dict], result: dict[str, Any], benches: list[dict]) -> dict | None:
    """The section's data, or None when the inputs hold no sweep, no parallel-in-time record
    and no Newton timing. `sweeps` holds the sweeps and the `parallel-in-time --json` records."""
    records = [d for d in sweeps if solve_records.is_solve_record(d)]
    sweeps = [d for d in sweeps if not solve_records.is_solve_record(d)]
    rows = [
        {**row, "machine": doc["environment"].get("machine", "?"), "commit": doc.get("commit")}
        for doc in sweeps
        for row in doc["rows"]
    ]
    timed_rows = timed(result, benches)
    ran, predicted = solve_records.rows(records)
    if not rows and not timed_rows and not records:
        return None
    out = {
        "solo": ran,
        "solo_predicted": predicted,
        "prediction": prediction.analyse(timed_rows, sweeps),
        "sweep_rows": rows,
        "by_steps": series(rows, "steps", ("machine", "cell", "method", "hidden")),
        "by_gain": series(rows, "gain", ("machine", "cell", "method", "hidden", "steps")),
        "timed": timed_rows,
        "sources": [
            {"machine": d["environment"].get("machine", "?"), "commit": d.get("commit")}
            | {"wall_s": d.get("wall_s")}
            for d in sweeps
        ],
    }
    out["findings"] = list(findings(out))
    return out


def series(rows: list[dict], grid: str, by: tuple[str, ...]) -> list[dict]:
    """Rows of one grid grouped by the `by` fields, each group's points sorted along the grid."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["grid"] == grid:
            groups.setdefault(tuple(row[f] for f in by), []).append(row)
    order = "steps" if grid == "steps" else "lle"
    return [
        {**dict(zip(by, k, strict=True)), "points": sorted(v, key=lambda r: r[order])}
        for k, v in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0])))
    ]


def model_work(row: dict[str, Any], iterations: int) -> dict[str, float]:
    """The work counts over every layer and direction of a timed case (each layer solved with the
    model's largest iteration count: an upper bound for a deeper model)."""
    D = 2 if row.get("bidirectional") else 1
    sequential = total = per_iteration = 0.0
    for size in flops.layer_inputs(row["input_size"], row["hidden"], row["layers"], D):
        shape = (row["cell"], row["batch"], row["steps"], size, row["hidden"])
        sequential += D * counts.sequential_flops(*shape)
        total += D * counts.projection_flops(*shape)
        per_iteration += D * counts.iteration_flops(
            row["mode"], row["cell"], row["batch"], row["steps"], row["hidden"]
        )
    total += iterations * per_iteration
    depth = iterations * counts.depth_per_iteration(row["steps"]) * row["layers"]
    return {
        "work_per_iteration": per_iteration / sequential,
        "work_multiplier": total / sequential,
        "depth": depth,
    }


def timed(result: dict[str, Any], benches=None) -> list[dict[str, Any]]:
    """One row per converged Newton / quasi-Newton timing beside its step loop: the time ratio
    (solve / step loop) with its interval, the work multiplier and the parallelism it found."""
    table = result["rows"]
    forward = {key(r, "mode"): r for r in table if r["mode"] == "forward"}
    penalties = {key(p, "mode"): p for p in result.get("penalties", [])}
    out = []
    for row in table:
        solve = row.get("parallel_in_time")
        step_loop = forward.get(key(row, "mode"))
        if row["mode"] not in METHODS or not step_loop or not solve or not solve.get("iterations"):
            continue
        work = model_work(row, solve["iterations"])
        time_ratio = ratio(row, step_loop)
        W = work["work_multiplier"]
        out.append(
            {
                **{k: row[k] for k in ("machine", "backend", "device", "mode", "cell", "dtype")},
                **{k: row[k] for k in ("batch", "steps", "input_size", "hidden", "threads")},
                "model": row.get("model") or "",
                "iterations": solve["iterations"],
                "lle": solve.get("lle"),
                "median_ci": row["median_ci"],
                "step_loop_ci": step_loop["median_ci"],
                "time_ratio_ci": time_ratio,
                **work,
                "parallelism_found_ci": (W / time_ratio[0], W / time_ratio[2], W / time_ratio[1]),
                "headroom_ci": _headroom(penalties.get(key(row, "mode"))),
                "verdict": measured_verdict(time_ratio),
                "prediction": solve.get("prediction"),
            }
        )
    return sorted(out, key=lambda t: (t["machine"], t["backend"], t["cell"], t["mode"], t["steps"]))


def _headroom(penalty: dict | None) -> Interval | None:
    """The step loop's penalty against the machine's best product (its own library's where the
    best is not known), when it holds (>= 1)."""
    if penalty is None:
        return None
    name = "best_penalty" if "best_penalty" in penalty else "penalty"
    return penalty[f"{name}_ci"] if penalty[name] >= 1 else None


def headroom(work_multiplier: float, penalty: Interval | None) -> str:
    """The step loop's penalty against the work multiplier: whether what the loop leaves idle
    at the product's rate could pay for the work (a bound, not a verdict: the verdict is the
    measured ratio's)."""
    if penalty is None:
        return "no penalty measured at this shape"
    if penalty[1] > work_multiplier:
        return "penalty above the work multiplier"
    if penalty[2] < work_multiplier:
        return "penalty below the work multiplier: reclaiming it cannot pay for the work"
    return "penalty's interval reaches the work multiplier"


def predicted_verdict(row: dict[str, Any]) -> str:
    predicted = row.get("prediction")
    return "not predicted" if not predicted else predicted["verdict"]


# ---- findings ------------------------------------------------------------------------------


def findings(solves: dict[str, Any]) -> Iterator[Finding]:
    yield from _summary(solves)
    yield from _iterations_vs_steps(solves)
    yield from _iterations_vs_lle(solves)
    yield from _timed(solves)


def _summary(solves: dict[str, Any]) -> Iterator[Finding]:
    """The answer in one sentence per sweep: iterations, work and depth at the longest T."""
    for source in solves["sources"]:
        rows = [
            r
            for r in solves["sweep_rows"]
            if r["machine"] == source["machine"] and r["grid"] == "steps" and solved(r)
        ]
        if not rows:
            continue
        longest = max(r["steps"] for r in rows)
        parts = []
        for method in METHODS:
            at = [r for r in rows if r["method"] == method and r["steps"] == longest]
            if at:
                parts.append(
                    f"{method} {_span(r['iterations'] for r in at)} iterations, "
                    f"{_span((r['work_multiplier'] for r in at), '.3g')}x the work, depth "
                    f"{_span(r['depth'] for r in at)} rounds"
                )
        yield Finding(
            f"How parallel the recurrence can be (sweep on {source['machine']} at commit "
            f"{(source['commit'] or 'unrecorded')[:10]}, default init): at T={longest}, "
            f"against the step loop's {longest} dependent steps: " + "; ".join(parts) + ". "
            "Parallel in time can beat the step loop only where the machine leaves more "
            "parallelism idle than that work multiplier."
        )


def _span(values, spec: str = "d") -> str:
    values = sorted(values)
    low, high = format(values[0], spec), format(values[-1], spec)
    return low if low == high else f"{low} to {high}"


def _iterations_vs_steps(solves: dict[str, Any]) -> Iterator[Finding]:
    smallest = {}
    for s in solves["by_steps"]:
        where = (s["machine"], s["cell"], s["method"])
        smallest[where] = min(smallest.get(where, s["hidden"]), s["hidden"])
    for s in solves["by_steps"]:
        if s["hidden"] != smallest[(s["machine"], s["cell"], s["method"])]:
            continue
        ran = [p for p in s["points"] if p["status"] == "solved"]
        if not ran:
            continue
        counts = ", ".join(f"{p['steps']}: {_count(p)}" for p in ran)
        last = max((p for p in ran if solved(p)), key=lambda p: p["steps"], default=None)
        text = (
            f"{s['cell'].upper()} {s['method']}, H={s['hidden']}, B={ran[0]['batch']}, "
            f"default init (counted in float64), iterations at T = {counts}."
        )
        if last is not None:
            text += (
                f" At T={last['steps']} (LLE {last['lle']:+.2f}): "
                f"**{last['work_multiplier']:.3g}x** the sequential pass's work, depth "
                f"{last['depth']} rounds against the step loop's {last['steps']} (T / depth = "
                f"{last['steps'] / last['depth']:.3g})."
            )
        skipped = [str(p["steps"]) for p in s["points"] if p["status"] == "skipped"]
        if skipped:
            text += f" Not run at T = {', '.join(skipped)}: over the sweep's size limits."
        yield Finding(text)


def _count(point: dict) -> str:
    if off_run(point):
        return f"{point['iterations']} but off the sequential run ({_error(point)})"
    return str(point["iterations"]) if point["converged"] else "not converged"


def _error(point: dict) -> str:
    error = point["max_abs_error"]
    return "non-finite" if error is None else f"max |error| {error:.1e}"


def _iterations_vs_lle(solves: dict[str, Any]) -> Iterator[Finding]:
    for s in solves["by_gain"]:
        ran = [p for p in s["points"] if p["status"] == "solved"]
        done = [p for p in ran if solved(p)]
        failed = [p for p in ran if not p["converged"]]
        off = [p for p in ran if off_run(p)]
        if not ran:
            continue
        parts = []
        if done:
            low, high = done[0], done[-1]
            parts.append(
                f"converges in {low['iterations']} iterations at LLE {low['lle']:+.2f} "
                f"(gain {low['gain']:g}) up to {high['iterations']} at LLE {high['lle']:+.2f} "
                f"(gain {high['gain']:g})"
            )
        if failed:
            first = failed[0]
            parts.append(
                f"does not converge within {first['max_iter']} iterations from LLE "
                f"{first['lle']:+.2f} (gain {first['gain']:g}; {len(failed)} of {len(ran)} "
                "gains)"
            )
        parts += [
            f"at LLE {p['lle']:+.2f} (gain {p['gain']:g}) its change fell under tol after "
            f"{p['iterations']} iterations while still off the sequential run ({_error(p)})"
            for p in off
        ]
        positive = [p for p in done if p["lle"] > 0]
        if positive:
            parts.append(f"{len(positive)} converged with LLE > 0")
        yield Finding(
            f"{s['cell'].upper()} {s['method']}, T={s['steps']}, H={s['hidden']}, R x gain: "
            + "; ".join(parts)
            + "."
        )


def _timed(solves: dict[str, Any]) -> Iterator[Finding]:
    groups: dict[tuple, list[dict]] = {}
    for t in solves["timed"]:
        groups.setdefault((t["machine"], t["backend"], t["cell"], t["mode"]), []).append(t)
    for (machine, backend, cell, method), rows in sorted(groups.items()):
        longest = max(rows, key=lambda t: t["steps"])
        wins = [t["steps"] for t in rows if t["time_ratio_ci"][2] < 1]
        found = longest["parallelism_found_ci"]
        text = (
            f"**{machine}** {backend}, {cell.upper()} {method} (B={longest['batch']}, "
            f"T={longest['steps']}, H={longest['hidden']}, {longest['dtype']}, "
            f"{longest['iterations']} iterations): **{format_ratio(longest['time_ratio_ci'])}** "
            f"the step loop's time for **{longest['work_multiplier']:.3g}x** its work: it ran at "
            f"{found[0]:.3g}x [{found[1]:.3g}, {found[2]:.3g}] the step loop's FLOP rate, and "
            f"break-even needs more than {longest['work_multiplier']:.3g}x. It beats the step "
            "loop at "
            + (f"T = {', '.join(map(str, wins))}" if wins else "no T measured")
            + f" (T measured: {', '.join(str(t['steps']) for t in rows)})."
        )
        text += (
            f" Verdict at T={longest['steps']}: {longest['verdict']} (predicted before it ran: "
            f"{predicted_verdict(longest)})."
        )
        if longest["headroom_ci"] is not None:
            text += (
                f" Recurrence penalty there {format_ratio(longest['headroom_ci'])}: "
                f"{headroom(longest['work_multiplier'], longest['headroom_ci'])}."
            )
        yield Finding(text, instability(longest["time_ratio_ci"]))
