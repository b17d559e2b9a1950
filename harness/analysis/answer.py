"""The answer first: per machine, at most MAX_SENTENCES sentences computed from the analysis,
each quoting a measured figure with its 95% interval, that say where recurrence stops scaling
there. In order: the fastest runtime on the standard case; each cell's per-step floor at B=1 and
what bounds it (a memory level, the product peak, or dispatch when the step runs far over its
roofline bound); the batch from which a step is compute-bound; the penalty of recurrence
against the same FLOPs as one product across B and T; and where evaluating the recurrence in
parallel over time wins or loses, and why. A sentence whose data the results lack is left out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness import registry
from harness.analysis.findings import is_standard
from harness.analysis.parallel_in_time import solved
from harness.analysis.roofline import step_bound
from harness.analysis.rows import ratio
from harness.bench.stats import format_interval, format_ratio, format_seconds

MAX_SENTENCES = 8
# A step that costs more than this many times its roofline bound is set by per-step dispatch
# (framework and kernel-launch overhead), not by the machine's compute or memory.
DISPATCH = 2.0
BATCHES = tuple(2**k for k in range(17))  # where the roofline's compute-bound batch is sought


def answers(result: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(machine, its sentences) for every machine that timed the built-in suites' models (a
    user's model has its own section)."""
    result = builtin(result)
    out = []
    for machine in sorted({r["machine"] for r in result["rows"]}):
        sentences = [
            *_fastest(result, machine),
            *_floor(result, machine),
            *_compute_bound(result, machine),
            *_penalty(result, machine),
            *_parallel_in_time(result, machine),
        ]
        if sentences:
            out.append((machine, sentences[:MAX_SENTENCES]))
    return out


def builtin(result: dict[str, Any]) -> dict[str, Any]:
    """The analysis without the rows, fits and timings of a user's model."""
    mine = {k: [x for x in result[k] if not x.get("model")] for k in _PARTS}
    pit = result.get("pit")
    if pit:
        pit = {**pit, "timed": [t for t in pit["timed"] if not t.get("model")]}
    return {**result, **mine, "pit": pit}


_PARTS = ("rows", "fits", "batch", "penalties", "roofline")


def markdown(sentences: list[str]) -> str:
    return "\n".join(f"- {s}" for s in sentences)


def _article(cell: str) -> str:
    return "An" if cell.upper()[0] in "AEFHILMNORSX" else "A"


def _cell(fit: dict[str, Any]) -> str:
    return f"{fit['cell'].upper()} (H={fit['hidden']}, {fit['dtype']})"


def _fastest(result: dict[str, Any], machine: str) -> Iterator[str]:
    rows = [
        r
        for r in result["rows"]
        if r["machine"] == machine and r["mode"] == "forward" and is_standard(r)
    ]
    if not rows:
        return
    threads = max(r["threads"] for r in rows)
    ranked = sorted((r for r in rows if r["threads"] == threads), key=lambda r: r["median"])
    first = ranked[0]
    text = (
        f"Fastest on the standard LSTM (B=32, T=100, I=128, H=256, {first['dtype']}, "
        f"{threads} thread{'s' if threads > 1 else ''}): **{first['target']}**, "
        f"{format_interval(first['median_ci'])}"
    )
    if len(ranked) > 1:
        second = ranked[1]
        interval = ratio(second, first)
        close = " (too close to call)" if interval[1] <= 1 <= interval[2] else ""
        text += f"; next {second['target']} at {format_ratio(interval)} its time{close}"
    yield text + f" ({len(ranked)} runtimes timed)."


def _floors(result: dict[str, Any], machine: str) -> list[dict[str, Any]]:
    """Per cell, the forward step-cost fit at B=1 with the smallest slope (any runtime)."""
    best: dict[str, dict] = {}
    for fit in result["fits"]:
        if fit["machine"] != machine or fit["mode"] != "forward" or fit["batch"] != 1:
            continue
        if fit["cell"] not in best or fit["b"] < best[fit["cell"]]["b"]:
            best[fit["cell"]] = fit
    return [best[c] for c in sorted(best)]


def _roof_of(result: dict[str, Any], fit: dict[str, Any]) -> dict[str, Any] | None:
    fields = ("machine", "target", "cell", "dtype", "batch", "hidden", "layers", "threads")
    for roof in result["roofline"]:
        if all(roof[f] == fit[f] for f in fields) and roof["input_size"] == fit["input_size"]:
            return roof
    return None


def _floor(result: dict[str, Any], machine: str) -> Iterator[str]:
    parts = []
    for fit in _floors(result, machine):
        part = f"{_cell(fit)} {format_interval(fit['b_ci'])} in {fit['target']}"
        roof = _roof_of(result, fit)
        if roof is None:
            part += " (no roofline bound: no product peak measured for it)"
        else:
            parts.append(part + _bounded_by(roof))
            continue
        parts.append(part)
    if parts:
        yield f"One step at B=1 costs at least: {'; '.join(parts)}."


def _bounded_by(roof: dict[str, Any]) -> str:
    times = roof["times_bound"]
    limit = (
        f"{roof['level']} bandwidth ({format_seconds(roof['bound_s'])})"
        if roof["limited_by"] == "memory"
        else f"the product peak ({format_seconds(roof['bound_s'])})"
    )
    if times < 1:
        return f", under its bound by {limit}: an inconsistency (see Inconsistencies)"
    if times <= DISPATCH:
        return f", {times:.2f}x its bound by {limit}: the machine sets it"
    return f", {times:.1f}x its bound by {limit}: dispatch, not the machine, sets it"


def _crossing(fit: dict[str, Any], peak_flops: float, peak, memory) -> int | None:
    """The smallest batch at which the step's compute term reaches its memory term."""
    for batch in BATCHES:
        bound = step_bound({**fit, "batch": batch}, peak, memory, peak_flops)
        if bound["memory_bound_s"] is None or bound["limited_by"] == "compute":
            return batch
    return None


def _compute_bound(result: dict[str, Any], machine: str) -> Iterator[str]:
    """For the first cell whose batch scaling was timed (else the first floor): where the
    roofline turns compute-bound, across the peak's interval, and what the batch cost."""
    floors = _floors(result, machine)
    scaled = {
        (s["target"], s["cell"])
        for s in result["batch"]
        if s["machine"] == machine and s["mode"] == "forward"
    }
    floors.sort(key=lambda f: (f["target"], f["cell"]) not in scaled)
    for fit in floors:
        peak = result["machine"]["peaks"].get(
            (machine, fit["device"], fit["dtype"], fit["threads"])
        )
        memory = result["machine"]["memory"].get((machine, fit["device"], fit["threads"]))
        if peak is None or memory is None:
            continue
        at = [_crossing(fit, flops, peak, memory) for flops in peak.flops_ci]
        if None in at:
            continue
        level = step_bound({**fit, "batch": at[0]}, peak, memory, peak.flops)["level"]
        low, high = min(at[1:]), max(at[1:])
        text = (
            f"{_article(fit['cell'])} {_cell(fit)} step turns compute-bound from **B={at[0]}** "
            f"[{low}, {high}] by the roofline (the best product, "
            f"{peak.flops / 1e9:.0f} GFLOP/s [{peak.flops_ci[1] / 1e9:.0f}, "
            f"{peak.flops_ci[2] / 1e9:.0f}], against the copy bandwidth in {level})"
        )
        yield text + _batch_cost(result, machine, fit, at[0]) + "."
        return


def _batch_cost(result: dict[str, Any], machine: str, fit: dict[str, Any], crossing: int) -> str:
    series = [
        s
        for s in result["batch"]
        if s["machine"] == machine
        and s["mode"] == "forward"
        and (s["target"], s["cell"]) == (fit["target"], fit["cell"])
    ]
    if not series:
        return ""
    points = series[0]["points"]
    past = [p for p in points if p["batch"] >= crossing and p["batch"] > 1] or points[-1:]
    shown = [past[0], points[-1]] if past[0] is not points[-1] else [points[-1]]
    cost = " and ".join(
        f"B={p['batch']} {format_ratio(p['relative_ci'])} B=1's time" for p in shown
    )
    return f"; measured in {fit['target']} at T={series[0]['steps']}: {cost}"


def _penalty(result: dict[str, Any], machine: str) -> Iterator[str]:
    held = [
        p
        for p in result["penalties"]
        if p["machine"] == machine and p["best_penalty"] >= 1 and p["penalty"] >= 1
    ]
    if not held:
        return
    counts: dict[str, int] = {}
    for p in held:
        counts[p["target"]] = counts.get(p["target"], 0) + 1
    target = max(counts, key=lambda t: (t in registry.HEADLINE, counts[t]))
    mine = [p for p in held if p["target"] == target]
    low = min(mine, key=lambda p: p["best_penalty"])
    high = max(mine, key=lambda p: p["best_penalty"])
    batches = sorted({p["batch"] for p in mine})
    steps = sorted({p["steps"] for p in mine})
    yield (
        f"Recurrence costs {target} {format_ratio(low['best_penalty_ci'])} "
        f"({_shape(low)}) to **{format_ratio(high['best_penalty_ci'])}** ({_shape(high)}) "
        "the time of the same FLOPs as one matrix product, over "
        f"B {_range(batches)} and T {_range(steps)} ({len(mine)} cases)."
    )


def _shape(p: dict[str, Any]) -> str:
    return f"{p['cell'].upper()} B={p['batch']} T={p['steps']} H={p['hidden']}"


def _range(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _parallel_in_time(result: dict[str, Any], machine: str) -> Iterator[str]:
    pit = result.get("pit") or {}
    timed = [t for t in pit.get("timed", []) if t["machine"] == machine]
    if timed:
        yield _where_it_wins(timed)
        yield _why(timed)
    limit = _lle_limit(pit)
    if limit:
        yield limit


def _where_it_wins(timed: list[dict]) -> str:
    wins = [t for t in timed if t["time_ratio_ci"][2] < 1]
    if wins:
        best = min(wins, key=lambda t: t["time_ratio_ci"][0])
        others = len({(t["cell"], t["mode"], t["steps"]) for t in wins}) - 1
        return (
            f"Evaluated in parallel over time, the recurrence beats the step loop: "
            f"{best['cell'].upper()} {best['mode']} at T={best['steps']} takes "
            f"**{format_ratio(best['time_ratio_ci'])}** the loop's time ({best['target']}, "
            f"B={best['batch']}, H={best['hidden']})"
            + (f", and {others} more case{'s' if others > 1 else ''}" if others else "")
            + f"; it loses in {sum(t['time_ratio_ci'][1] > 1 for t in timed)} of {len(timed)}."
        )
    best = min(timed, key=lambda t: t["time_ratio_ci"][0])
    return (
        f"Evaluated in parallel over time, the recurrence wins nowhere measured: the closest, "
        f"{best['cell'].upper()} {best['mode']} at T={best['steps']} ({best['target']}, "
        f"B={best['batch']}, H={best['hidden']}), takes **{format_ratio(best['time_ratio_ci'])}** "
        "the step loop's time."
    )


def _why(timed: list[dict]) -> str:
    parts = []
    for method in ("newton", "quasi-newton"):
        rows = [t for t in timed if t["mode"] == method]
        if not rows:
            continue
        fastest = max(rows, key=lambda t: t["parallelism_found_ci"][0])
        iterations = sorted(t["iterations"] for t in rows)
        work = sorted(t["work_multiplier"] for t in rows)
        parts.append(
            f"{method} takes {_range(iterations)} iterations for {work[0]:.3g}-{work[-1]:.3g}x "
            f"the loop's work and runs it at up to {format_ratio(fastest['parallelism_found_ci'])} "
            "the loop's FLOP rate"
        )
    lle = sorted(t["lle"] for t in timed if t.get("lle") is not None)
    at = f" (models at LLE {lle[0]:.2f} to {lle[-1]:.2f})" if lle else ""
    return (
        f"Why{at}: {'; '.join(parts)}; it wins only where that rate gain exceeds the work "
        "multiplier."
    )


def _lle_limit(pit: dict[str, Any]) -> str:
    """The largest Lyapunov exponent from which the sweeps' solves stop converging."""
    first_failures, solved_at = [], []
    for series in pit.get("by_gain", []):
        points = series["points"]
        failed = [p["lle"] for p in points if p["lle"] is not None and not solved(p)]
        solved_at += [p["lle"] for p in points if p["lle"] is not None and solved(p)]
        if failed:
            first_failures.append(min(failed))
    if not first_failures or not solved_at:
        return ""
    return (
        "Both methods need a contracting model: in the gain sweeps (float64) they stop "
        f"converging from LLE {min(first_failures):+.2f} to {max(first_failures):+.2f} "
        f"({len(first_failures)} of {len(pit['by_gain'])} series fail somewhere; solved up to "
        f"LLE {max(solved_at):+.2f})."
    )
