"""The streaming modes in the report: the answer's sentences (what one streamed step costs on
the best backend against the in-sequence floor, and how many streams the machine serves under
each p99 target), a table of tail latencies, a table of capacities, and the latency curve a
capacity planner reads (p99 against offered load)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from harness.analysis.streaming import LoadRow, Streaming, finite
from harness.markdown import markdown_table
from harness.stats import format_ratio, format_seconds
from harness.tail import LABELS, NAMES, PERCENTILES, format_open_interval

STREAM_TITLE = "Streaming: one step per call, the state carried by the caller"
LOAD_TITLE = "Streams one machine serves (p99 under a target)"
CURVE = "latency_vs_load"
CAPTION = "Latency against offered load: p99 (and p50) per step, by backend and H"
TARGET_RATIO = 2.0  # the bound: a streamed step at most 2x the in-sequence floor
WHY = (
    "Each call is timed on its own (every call of every round kept); percentiles are numpy's "
    "(linear), each with a 95% interval from order statistics ('-)': no sample bounds it from "
    "above). The floor is the same backend's forward of the same model at the stream's T, "
    "timed in the same interleaved group, divided by T (where the group has none of its own: "
    "the group's fastest, named). What a call pays over the floor is split into the "
    "framework's no-op call (the input in, one trivial operation, the output out: dispatch "
    "and conversion) and the rest (the step's other operations dispatched one by one, their "
    "allocations, and the input projection a sequence does for all steps at once)."
)


def _model(row) -> str:
    shape = f"{row.cell.upper()} H={row.hidden}"
    return f"{row.model} ({shape})" if row.model else shape


def _seconds(interval) -> str:
    return format_open_interval(interval)


def stream_table(result: Streaming) -> str:
    header = ["machine", "backend", "model", "B", "calls"]
    header += [f"{LABELS[q]} [95%]" for q in PERCENTILES]
    header += ["floor (in-sequence step)", "p50 / floor", "no-op call", "rest of p50"]
    rows = []
    for r in result.streams:
        floor = "none in its group"
        if r.floor is not None:
            whose = "" if r.floor_backend == r.backend else f" ({r.floor_backend})"
            floor = _seconds(r.floor) + whose
        ratio = format_ratio(r.overhead) if r.overhead and finite(r.overhead) else ""
        rest = ""
        if r.extra_s is not None:
            left = r.extra_s - r.noop[0]
            rest = format_seconds(left) if left > 0 else "none"
        cells = [r.machine, r.backend, _model(r), r.batch, r.calls]
        cells += [_seconds(r.tail[NAMES[q]]) for q in PERCENTILES]
        rows.append([*cells, floor, ratio, _seconds(r.noop), rest])
    return WHY + "\n\n" + markdown_table(header, rows)


def _policy(row: LoadRow) -> str:
    p = row.policy
    wait = "none (greedy)" if p["max_wait_s"] == 0 else format_seconds(p["max_wait_s"])
    return (
        f"each stream sends {p['rate_hz']:g} steps/s (Poisson); the batcher takes every waiting "
        f"request, oldest first and one per stream, up to {p['max_batch']} a call, holding the "
        f"oldest for at most {wait}; a request waiting {format_seconds(p['give_up_s'])} stops "
        "the trial (overloaded)"
    )


def load_table(result: Streaming) -> str:
    header = ["machine", "backend", "model", "p99 target", "streams", "steps/s served"]
    header += ["p99 there [95%]", "trials"]
    rows = []
    for r in result.loads:
        for served in r.capacity:
            rows.append(
                [
                    r.machine,
                    r.backend,
                    _model(r),
                    format_seconds(served.target_s),
                    served.streams,
                    "" if served.achieved_hz is None else f"{served.achieved_hz:,.0f}",
                    "" if served.p99 is None else _seconds(served.p99),
                    len(r.curve),
                ]
            )
    policies = sorted({_policy(r) for r in result.loads})
    note = (
        "The largest N whose trial's p99 is under the target, below the smallest N whose "
        "trial's p99 is over it, 95% interval and all (a trial that gave up fails every "
        "target). Policy: "
        + "; or ".join(policies)
        + ". Every trial is a point of the curve in the plots."
    )
    return note + "\n\n" + markdown_table(header, rows)


def sections(result: Streaming | None) -> list[tuple[str, str]]:
    if not result:
        return []
    return [
        (STREAM_TITLE, stream_table(result) if result.streams else ""),
        (LOAD_TITLE, load_table(result) if result.loads else ""),
    ]


# ---- the answer ----------------------------------------------------------------------------


def answer(result: Streaming | None, machine: str) -> Iterator[str]:
    if not result:
        return
    yield from _streamed_step(result, machine)
    yield from _streams_served(result, machine)


def _best(rows):
    return min(rows, key=lambda r: r.tail["p50"][0], default=None)


def _streamed_step(result: Streaming, machine: str) -> Iterator[str]:
    """The best backend's streamed step of the LSTM at H=256 (else the largest H timed, else
    another cell's), B=1, against its floor."""
    mine = [r for r in result.streams if r.machine == machine and r.batch == 1 and not r.model]
    if not mine:
        return
    cell = "lstm" if any(r.cell == "lstm" for r in mine) else mine[0].cell
    sizes = {r.hidden for r in mine if r.cell == cell}
    hidden = 256 if 256 in sizes else max(sizes)
    best = _best([r for r in mine if (r.cell, r.hidden) == (cell, hidden)])
    p50, p99, p999 = (best.tail[k] for k in ("p50", "p99", "p99_9"))
    text = (
        f"Streamed one step per call ({_model(best)}, B=1), **{best.backend}** is fastest: "
        f"p50 {_seconds(p50)}, p99 {_seconds(p99)}, p99.9 {_seconds(p999)} over "
        f"{best.calls:,} calls"
    )
    if best.overhead is None:
        yield text + "."
        return
    ratio = best.overhead
    verdict = "within" if ratio[0] <= TARGET_RATIO else "over"
    text += (
        f"; that is {format_ratio(ratio)} the in-sequence step floor "
        f"({_seconds(best.floor)}, {best.floor_backend}'s forward at T={best.steps} / "
        f"{best.steps}), {verdict} the {TARGET_RATIO:g}x bound"
    )
    if best.best_floor_backend not in (None, best.floor_backend):
        text += (
            f" ({format_ratio(best.over_best)} the fastest in-sequence step of any backend, "
            f"{best.best_floor_backend}'s {_seconds(best.best_floor)})"
        )
    if ratio[0] > TARGET_RATIO and best.extra_s is not None:
        rest = max(0.0, best.extra_s - best.noop[0])
        text += (
            f": of the {format_seconds(best.extra_s)} a call pays over the floor, the "
            f"framework's no-op call is {_seconds(best.noop)} and the rest, "
            f"{format_seconds(rest)}, is the step's own operations dispatched one at a time "
            "(with their allocations and the input projection a sequence batches over T)"
        )
    yield text + "."


def _streams_served(result: Streaming, machine: str) -> Iterator[str]:
    mine = [r for r in result.loads if r.machine == machine and not r.model]
    if not mine:
        return
    targets = sorted({s.target_s for r in mine for s in r.capacity}, reverse=True)
    parts = []
    for target in targets:
        found = [(s, r) for r in mine for s in r.capacity if s.target_s == target]
        best_served, best_row = max(found, key=lambda f: (f[0].streams, -f[1].hidden))
        if best_served.streams == 0:
            fastest = min((p for _, r in found for p in r.curve), key=lambda p: p.p99[0])
            parts.append(
                f"at p99 under {format_seconds(target)}: **not one stream** on any backend "
                f"(the lowest p99 measured, {_seconds(fastest.p99)} at {fastest.streams} "
                f"stream{'s' if fastest.streams > 1 else ''})"
            )
            continue
        sizes = sorted({r.hidden for _, r in found})
        per_size = []
        for hidden in sizes:
            at = [f for f in found if f[1].hidden == hidden]
            s, r = max(at, key=lambda f: f[0].streams)
            per_size.append(f"H={hidden} {s.streams:,} ({r.backend})")
        parts.append(
            f"at p99 under {format_seconds(target)}: **{best_served.streams:,} streams** "
            f"({best_row.backend}, {_model(best_row)}"
            + (
                f", {best_served.achieved_hz:,.0f} steps/s served"
                if best_served.achieved_hz
                else ""
            )
            + f"; by size: {', '.join(per_size)})"
        )
    rate = mine[0].policy["rate_hz"]
    yield (
        f"Streams this machine serves, each sending {rate:g} steps/s, batched across streams: "
        + "; ".join(parts)
        + "."
    )


# ---- the curve -----------------------------------------------------------------------------


def plots(result: Streaming | None) -> list[tuple[str, Callable[[Any], Any], Any]]:
    """(name, draw, data) for harness.analysis.plots.plot_all."""
    return [(CURVE, draw_curve, result.loads)] if result and result.loads else []


def draw_curve(loads: tuple[LoadRow, ...]):
    """p99 (line, its interval as a band) and p50 (dotted) against offered steps/s, log-log,
    one series per (machine, backend, model); the targets as grey lines. A trial that gave up
    is marked with an x."""
    import matplotlib.pyplot as plt

    from harness.analysis.styles import style

    fig, axis = plt.subplots(figsize=(10, 6))
    for index, row in enumerate(loads):
        look = style(index)
        label = f"{row.backend} {_model(row)} th{row.threads} @{row.machine}"
        offered = [p.offered_hz for p in row.curve]
        p99 = [p.p99[0] * 1e3 for p in row.curve]
        axis.loglog(offered, p99, label=f"{label} p99", **look)
        low = [p.p99[1] * 1e3 for p in row.curve]
        high = [min(p.p99[2], p.p99[0] * 10) * 1e3 for p in row.curve]  # an open end: capped
        axis.fill_between(offered, low, high, color=look["color"], alpha=0.12)
        axis.loglog(offered, [p.p50 * 1e3 for p in row.curve], color=look["color"], lw=0.8, ls=":")
        over = [(p.offered_hz, p.p99[0] * 1e3) for p in row.curve if p.gave_up]
        if over:
            axis.plot(*zip(*over, strict=True), "x", color=look["color"], ms=9)
    for target in sorted({s.target_s for r in loads for s in r.capacity}):
        axis.axhline(target * 1e3, color="0.4", lw=0.8, ls="--")
        axis.annotate(
            f"p99 target {format_seconds(target)}",
            (0.01, target * 1e3),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            va="bottom",
        )
    axis.set(
        xlabel="offered load (steps per second, all streams)",
        ylabel="latency per step (ms): p99 solid, p50 dotted",
        title="Latency against offered load (x: the trial gave up, overloaded)",
    )
    axis.legend(fontsize=7)
    axis.grid(True, which="both", alpha=0.3)
    return fig
