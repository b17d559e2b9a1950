"""The parallel-in-time section's Markdown tables and plots, from
harness.analysis.parallel_in_time.analyse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.analysis import prediction_views
from harness.analysis.parallel_in_time import (
    ParallelInTime,
    SweepPoint,
    SweepSeries,
    TimedSolve,
    headroom,
    predicted_verdict,
)
from harness.analysis.styles import style
from harness.markdown import field, fields, markdown_table, table_of
from harness.stats import format_interval, format_ratio

CAPTIONS = {
    "parallel_in_time_iterations_vs_T": "Newton / quasi-Newton iterations against T (default init)",
    "parallel_in_time_iterations_vs_lle": (
        "Iterations against the largest Lyapunov exponent (gain sweep)"
    ),
    "parallel_in_time_work_depth": "Work multiplier and depth against T (counted)",
    "parallel_in_time_speed": "Parallel-in-time solve time over the step loop's, per device",
    "parallel_in_time_prediction": prediction_views.CAPTION,
}
NOTE = (
    "Counts, not timings: iterations from an all-zero guess until the max-abs change is <= tol "
    "(the last, confirming iteration included), float64, B={batch}, I={input}; seconds are "
    "informational. Work multiplier = (input projection + iterations x one iteration's FLOPs) "
    "/ the sequential pass's FLOPs; depth = iterations x (2 + the odd-even scan's rounds), "
    "against T rounds for the sequential pass (harness/sweeps/parallel_in_time_work.py says "
    "how each is counted). A solve beats the step loop only where the machine has more idle "
    "parallelism than its work multiplier; T / depth is the most any number of lanes could gain."
)
TIMED_NOTE = (
    "Measured: each solve against the step loop of the same backend, shape, threads and run "
    "(rnnbench bench, modes newton / quasi-newton beside forward; ratios paired by round). "
    "Parallelism found = work multiplier / time ratio: how many times the step loop's FLOP "
    "rate the solve ran at; it wins only where that exceeds its work multiplier. LLE: the "
    "model's largest Lyapunov exponent on the timed inputs. Verdict: wins where the ratio's "
    "whole 95% interval lies below 1, loses where it lies above, too close to call where it "
    "holds 1; predicted: the verdict predicted before the solve ran (harness/predict)."
)
PENALTY_NOTE = (
    "Penalty: the step loop against the best product of the same FLOPs, where it was measured, "
    "set against the work multiplier: a bound on what reclaiming the loop's idle machine could "
    "pay for, not a verdict."
)
AMDAHL_RESTATED = (
    "This bound treats FLOP shares as time shares and holds only for methods that keep h @ R "
    "one step at a time (the step loop, cuDNN, minGRU's contrast): Newton's method in time "
    "parallelises h @ R too, at the cost of a work multiplier"
)


def markdown(solves: ParallelInTime) -> str:
    parts = []
    if solves.sweep_rows:
        first = solves.sweep_rows[0]
        parts.append(NOTE.format(batch=first.batch, input=first.input_size))
        parts.append(_sources(solves))
        parts += ["Iterations against T:", _matrix(solves.by_steps, _iterations)]
        parts += ["Work multiplier against T:", _matrix(solves.by_steps, _multiplier)]
        parts += ["Depth in rounds against T (T / depth):", _matrix(solves.by_steps, _depth)]
        parts += ["Iterations against the largest Lyapunov exponent:", gain_table(solves)]
        skipped = [r for r in solves.sweep_rows if r.status == "skipped"]
        if skipped:
            parts.append("Skipped: " + "; ".join(sorted({_skip(r) for r in skipped})) + ".")
    if solves.timed:
        penalty = any(t.headroom_ci for t in solves.timed)
        parts += [TIMED_NOTE + (" " + PENALTY_NOTE if penalty else ""), timed_table(solves)]
    elif not solves.solo:
        parts.append("No Newton / quasi-Newton timings among these results.")
    parts += prediction_views.solo(solves.solo, solves.solo_predicted)
    parts += prediction_views.markdown(solves.prediction)
    return "\n\n".join(parts)


def _sources(solves: ParallelInTime) -> str:
    return "Sweeps: " + "; ".join(
        f"{s.machine}, commit {(s.commit or 'unrecorded')[:10]}, {s.wall_s or 0:.0f} s"
        for s in solves.sources
    )


def _skip(row: SweepPoint) -> str:
    return f"{row.cell} {row.method} H={row.hidden} T={row.steps}: {row.reason}"


def _matrix(series: list[SweepSeries], show: Callable[[SweepPoint], str]) -> str:
    steps = sorted({p.steps for s in series for p in s.points})
    rows = []
    for s in series:
        by_steps = {p.steps: p for p in s.points}
        cells = [show(by_steps[t]) if t in by_steps else "" for t in steps]
        rows.append([s.machine, s.cell, s.method, s.hidden, *cells])
    return markdown_table(["machine", "cell", "method", "H", *map(str, steps)], rows)


def _iterations(p: SweepPoint) -> str:
    if p.status == "skipped":
        return "skipped"
    if p.off_run:
        return f"{p.iterations}, off the sequential run"
    return str(p.iterations) if p.converged else "no"


def _iterations_and_reason(p: SweepPoint) -> str:
    if p.reason:
        return f"{'skipped' if p.status == 'skipped' else 'no'} ({p.reason})"
    return _iterations(p)


def _multiplier(p: SweepPoint) -> str:
    return "" if p.work_multiplier is None else f"{p.work_multiplier:.3g}x"


def _depth(p: SweepPoint) -> str:
    return "" if p.depth is None else f"{p.depth} ({p.steps / p.depth:.2g})"


def _lle(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def gain_table(solves: ParallelInTime) -> str:
    rows = [p for s in solves.by_gain for p in s.points]
    columns = fields("machine", "cell", "method") + [
        ("H", field("hidden")),
        ("T", field("steps")),
        ("gain", lambda p: f"{p.gain:g}"),
        ("LLE", lambda p: _lle(p.lle)),
        ("iterations", _iterations_and_reason),
        ("work", _multiplier),
        (
            "max abs error",
            lambda p: "" if p.max_abs_error is None else f"{p.max_abs_error:.1e}",
        ),
    ]
    return table_of(columns, rows)


def timed_table(solves: ParallelInTime) -> str:
    columns = fields("machine", "backend", "cell", "mode") + [
        ("B", field("batch")),
        ("T", field("steps")),
        ("H", field("hidden")),
        ("iterations", field("iterations")),
        ("LLE", lambda t: _lle(t.lle)),
        ("solve", lambda t: format_interval(t.median_ci)),
        ("step loop", lambda t: format_interval(t.step_loop_ci)),
        ("solve / step loop", lambda t: format_ratio(t.time_ratio_ci)),
        ("work", lambda t: f"{t.work_multiplier:.3g}x"),
        ("parallelism found", lambda t: format_ratio(t.parallelism_found_ci, 3)),
        ("verdict", field("verdict")),
        ("predicted", predicted_verdict),
    ]
    if any(t.headroom_ci for t in solves.timed):  # only where a penalty was measured
        columns += [
            ("penalty", lambda t: format_ratio(t.headroom_ci) if t.headroom_ci else ""),
            ("penalty vs work", lambda t: headroom(t.work_multiplier, t.headroom_ci)),
        ]
    return table_of(columns, solves.timed)


# ---- plots ---------------------------------------------------------------------------------


def plots(solves: ParallelInTime | None) -> list[tuple[str, Callable[[Any], Any], Any]]:
    """(name, draw, data) for plots.plot_all; empty without parallel-in-time data."""
    if not solves:
        return []
    return [
        ("parallel_in_time_iterations_vs_T", iterations_vs_steps, solves.by_steps),
        ("parallel_in_time_iterations_vs_lle", iterations_vs_lle, solves.by_gain),
        ("parallel_in_time_work_depth", work_depth, solves.by_steps),
        ("parallel_in_time_speed", speed, solves.timed),
        (
            "parallel_in_time_prediction",
            prediction_views.predicted_vs_measured,
            solves.prediction.rows if solves.prediction else None,
        ),
    ]


def _label(s: SweepSeries) -> str:
    return f"{s.cell} {s.method} H={s.hidden}"


def iterations_vs_steps(series: list[SweepSeries]):
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(9, 5))
    for index, s in enumerate(series):
        points = [p for p in s.points if p.solved]
        steps, iterations = [p.steps for p in points], [p.iterations for p in points]
        axis.semilogx(steps, iterations, label=_label(s), **style(index))
    axis.set(xlabel="sequence length T", ylabel="iterations to converge", yscale="log")
    axis.set_title("Iterations against T (unconverged and skipped points left out)")
    axis.legend(fontsize=7, ncol=2)
    axis.grid(True, which="both", alpha=0.3)
    return fig


def iterations_vs_lle(series: list[SweepSeries]):
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(9, 5))
    for index, s in enumerate(series):
        # a point whose exponent or count is not finite has nowhere to go
        done = [
            (p.lle, p.iterations)
            for p in s.points
            if p.solved and p.lle is not None and p.iterations is not None
        ]
        failed = [
            (p.lle, p.max_iter)
            for p in s.points
            if p.status == "solved" and not p.solved and p.lle is not None and p.max_iter
        ]
        look = style(index)
        axis.plot([x for x, _ in done], [y for _, y in done], label=_label(s), **look)
        axis.plot(
            [x for x, _ in failed],
            [y for _, y in failed],
            "x",
            color=look["color"],
            markersize=9,
        )
    axis.axvline(0, color="k", lw=0.8)
    axis.set(xlabel="largest Lyapunov exponent (per step)", ylabel="iterations", yscale="log")
    axis.set_title(
        "Iterations against the LLE (x: not converged or off the sequential run, at max_iter)"
    )
    axis.legend(fontsize=7, ncol=2)
    axis.grid(True, which="both", alpha=0.3)
    return fig


def work_depth(series: list[SweepSeries]):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    longest = max(p.steps for s in series for p in s.points)
    for index, s in enumerate(series):
        points = [p for p in s.points if p.solved]
        steps = [p.steps for p in points]
        work = [p.work_multiplier for p in points]
        left.loglog(steps, work, label=_label(s), **style(index))
        right.loglog(steps, [p.depth for p in points], **style(index))
    right.loglog([1, longest], [1, longest], "k:", label="sequential pass: T rounds")
    left.set(xlabel="T", ylabel="work / the sequential pass's", title="Work multiplier")
    right.set(xlabel="T", ylabel="rounds of dependent operations", title="Depth")
    left.legend(fontsize=7, ncol=2)
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
    return fig


def speed(timed: list[TimedSolve]):
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(13, max(3, 0.25 * len(timed))))
    labels = [f"{t.machine} {t.backend} {t.cell} {t.mode} T={t.steps} H={t.hidden}" for t in timed]
    estimate = [t.time_ratio_ci[0] for t in timed]
    spread = [
        [e - t.time_ratio_ci[1] for e, t in zip(estimate, timed, strict=True)],
        [t.time_ratio_ci[2] - e for e, t in zip(estimate, timed, strict=True)],
    ]
    axis.barh(labels, estimate, xerr=spread, error_kw={"lw": 0.8}, label="solve / step loop")
    axis.plot(
        [t.work_multiplier for t in timed], labels, "k|", markersize=12, label="work multiplier"
    )
    axis.axvline(1, color="k", lw=0.8)
    axis.set(xscale="log", xlabel="time (or work) over the step loop's (x)")
    axis.set_title("Parallel in time against the step loop: it wins left of 1")
    axis.tick_params(axis="y", labelsize=7)
    axis.legend(fontsize=8)
    return fig
