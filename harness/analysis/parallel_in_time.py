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

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

from harness.analysis import prediction, solve_records
from harness.analysis.parallel_in_time_rows import (
    Source,
    SweepPoint,
    SweepSeries,
    TimedSolve,
    Work,
    headroom,
    predicted_verdict,
)
from harness.analysis.penalty import PenaltyRow
from harness.analysis.rows import TimedRow, key, ratio
from harness.analysis.stability import Finding, instability
from harness.model import flops
from harness.predict.verdict import measured_verdict
from harness.records.parallel_in_time import SweepDocument
from harness.stats import Interval, format_ratio
from harness.sweeps import parallel_in_time_work as counts

# the rows are parallel_in_time_rows.py's, named here too
__all__ = [
    "ParallelInTime",
    "Source",
    "SweepPoint",
    "SweepSeries",
    "TimedSolve",
    "Work",
    "analyse",
    "headroom",
    "predicted_verdict",
]

TITLE = "Parallel in time: how parallel can this recurrence be"
METHODS = counts.METHODS


@dataclasses.dataclass(frozen=True)
class ParallelInTime:
    """The section's data: the sweeps' points and series, the timed solves, the single solves
    and predictions of `parallel-in-time --json`, and predicted against measured."""

    sweep_rows: list[SweepPoint]
    by_steps: list[SweepSeries]
    by_gain: list[SweepSeries]
    timed: list[TimedSolve]
    sources: list[Source]
    findings: list[Finding] = dataclasses.field(default_factory=list)
    solo: list[solve_records.SoloSolve] = dataclasses.field(default_factory=list)
    solo_predicted: list[solve_records.SoloPrediction] = dataclasses.field(default_factory=list)
    prediction: prediction.PredictionAnalysis | None = None


def analyse(
    sweeps: Sequence[SweepDocument],
    table: Sequence[TimedRow],
    penalties: Sequence[PenaltyRow],
    records: Sequence[solve_records.SolveFile] = (),
) -> ParallelInTime | None:
    """The section's data, or None when the inputs hold no sweep, no `parallel-in-time --json`
    record and no Newton timing."""
    rows = [
        SweepPoint(**dict(row), machine=doc.machine, commit=doc.commit)
        for doc in sweeps
        for row in doc.rows
    ]
    timed_rows = timed(table, penalties)
    if not rows and not timed_rows and not records:
        return None
    ran, predicted = solve_records.rows(records)
    out = ParallelInTime(
        rows,
        series(rows, "steps"),
        series(rows, "gain"),
        timed_rows,
        [Source(d.machine, d.commit, d.wall_s) for d in sweeps],
        solo=ran,
        solo_predicted=predicted,
        prediction=prediction.analyse(timed_rows, sweeps),
    )
    return dataclasses.replace(out, findings=list(findings(out)))


def series(rows: Iterable[SweepPoint], grid: str) -> list[SweepSeries]:
    """Rows of one grid grouped by (machine, cell, method, hidden), and by T for the gain
    grid, each group's points sorted along the grid."""
    groups: dict[tuple[str, str, str, int, int | None], list[SweepPoint]] = {}
    for row in rows:
        if row.grid == grid:
            steps = None if grid == "steps" else row.steps
            groups.setdefault((row.machine, row.cell, row.method, row.hidden, steps), []).append(
                row
            )
    out = []
    for where, points in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if grid == "steps":
            points.sort(key=lambda r: r.steps)
        else:
            points.sort(key=lambda r: r.lle if r.lle is not None else float("inf"))
        out.append(SweepSeries(*where, tuple(points)))
    return out


def model_work(row: TimedRow, iterations: int) -> Work:
    """The work counts over every layer and direction of a timed case (each layer solved with the
    model's largest iteration count: an upper bound for a deeper model)."""
    D = 2 if row.bidirectional else 1
    sequential = total = per_iteration = 0.0
    for size in flops.layer_inputs(row.input_size, row.hidden, row.layers, D):
        shape = (row.cell, row.batch, row.steps, size, row.hidden)
        sequential += D * counts.sequential_flops(*shape)
        total += D * counts.projection_flops(*shape)
        per_iteration += D * counts.iteration_flops(
            row.mode, row.cell, row.batch, row.steps, row.hidden
        )
    total += iterations * per_iteration
    depth = iterations * counts.depth_per_iteration(row.steps) * row.layers
    return Work(per_iteration / sequential, total / sequential, depth)


def timed(table: Sequence[TimedRow], penalties: Sequence[PenaltyRow]) -> list[TimedSolve]:
    """One row per converged Newton / quasi-Newton timing beside its step loop: the time ratio
    (solve / step loop) with its interval, the work multiplier and the parallelism it found."""
    forward = {key(r, "mode"): r for r in table if r.mode == "forward"}
    by_key = {key(p, "mode"): p for p in penalties}
    out = []
    for row in table:
        solve = row.parallel_in_time
        step_loop = forward.get(key(row, "mode"))
        if row.mode not in METHODS or not step_loop or not solve or not solve.iterations:
            continue
        work = model_work(row, solve.iterations)
        time_ratio = ratio(row, step_loop)
        W = work.work_multiplier
        out.append(
            TimedSolve(
                machine=row.machine,
                backend=row.backend,
                device=row.device,
                mode=row.mode,
                cell=row.cell,
                dtype=row.dtype,
                batch=row.batch,
                steps=row.steps,
                input_size=row.input_size,
                hidden=row.hidden,
                threads=row.threads,
                model=row.model or "",
                iterations=solve.iterations,
                lle=solve.lle,
                median_ci=row.median_ci,
                step_loop_ci=step_loop.median_ci,
                time_ratio_ci=time_ratio,
                work=work,
                parallelism_found_ci=(W / time_ratio[0], W / time_ratio[2], W / time_ratio[1]),
                headroom_ci=_headroom(by_key.get(key(row, "mode"))),
                verdict=measured_verdict(time_ratio),
                prediction=solve.prediction,
            )
        )
    return sorted(out, key=lambda t: (t.machine, t.backend, t.cell, t.mode, t.steps))


def _headroom(penalty: PenaltyRow | None) -> Interval | None:
    """The step loop's penalty against the machine's best product, when it holds (>= 1)."""
    if penalty is None:
        return None
    return penalty.best_penalty_ci if penalty.best_penalty >= 1 else None


# ---- findings ------------------------------------------------------------------------------


def findings(solves: ParallelInTime) -> Iterator[Finding]:
    yield from _summary(solves)
    yield from _iterations_vs_steps(solves)
    yield from _iterations_vs_lle(solves)
    yield from _timed(solves)


def _summary(solves: ParallelInTime) -> Iterator[Finding]:
    """The answer in one sentence per sweep: iterations, work and depth at the longest T."""
    for source in solves.sources:
        rows = [
            r
            for r in solves.sweep_rows
            if r.machine == source.machine and r.grid == "steps" and r.solved
        ]
        if not rows:
            continue
        longest = max(r.steps for r in rows)
        parts = []
        for method in METHODS:
            at = [r for r in rows if r.method == method and r.steps == longest]
            if at:
                parts.append(
                    f"{method} {_span(r.iterations for r in at)} iterations, "
                    f"{_span((r.work_multiplier for r in at), '.3g')}x the work, depth "
                    f"{_span(r.depth for r in at)} rounds"
                )
        yield Finding(
            f"How parallel the recurrence can be (sweep on {source.machine} at commit "
            f"{(source.commit or 'unrecorded')[:10]}, default init): at T={longest}, "
            f"against the step loop's {longest} dependent steps: " + "; ".join(parts) + ". "
            "Parallel in time can beat the step loop only where the machine leaves more "
            "parallelism idle than that work multiplier."
        )


def _span(values: Iterable[float | None], spec: str = "d") -> str:
    """The range of values a converged solve has (never None there)."""
    ordered = sorted(v for v in values if v is not None)
    low, high = format(ordered[0], spec), format(ordered[-1], spec)
    return low if low == high else f"{low} to {high}"


def _iterations_vs_steps(solves: ParallelInTime) -> Iterator[Finding]:
    smallest: dict[tuple[str, str, str], int] = {}
    for s in solves.by_steps:
        where = (s.machine, s.cell, s.method)
        smallest[where] = min(smallest.get(where, s.hidden), s.hidden)
    for s in solves.by_steps:
        if s.hidden != smallest[(s.machine, s.cell, s.method)]:
            continue
        ran = [p for p in s.points if p.status == "solved"]
        if not ran:
            continue
        counted = ", ".join(f"{p.steps}: {_count(p)}" for p in ran)
        last = max((p for p in ran if p.solved), key=lambda p: p.steps, default=None)
        text = (
            f"{s.cell.upper()} {s.method}, H={s.hidden}, B={ran[0].batch}, "
            f"default init (counted in float64), iterations at T = {counted}."
        )
        if last is not None and last.depth:
            text += (
                f" At T={last.steps} (LLE {_signed(last.lle)}): "
                f"**{last.work_multiplier:.3g}x** the sequential pass's work, depth "
                f"{last.depth} rounds against the step loop's {last.steps} (T / depth = "
                f"{last.steps / last.depth:.3g})."
            )
        skipped = [str(p.steps) for p in s.points if p.status == "skipped"]
        if skipped:
            text += f" Not run at T = {', '.join(skipped)}: over the sweep's size limits."
        yield Finding(text)


def _signed(lle: float | None) -> str:
    return "not finite" if lle is None else f"{lle:+.2f}"


def _count(point: SweepPoint) -> str:
    if point.off_run:
        return f"{point.iterations} but off the sequential run ({_error(point)})"
    return str(point.iterations) if point.converged else "not converged"


def _error(point: SweepPoint) -> str:
    error = point.max_abs_error
    return "non-finite" if error is None else f"max |error| {error:.1e}"


def _iterations_vs_lle(solves: ParallelInTime) -> Iterator[Finding]:
    for s in solves.by_gain:
        ran = [p for p in s.points if p.status == "solved"]
        done = [p for p in ran if p.solved]
        failed = [p for p in ran if not p.converged]
        off = [p for p in ran if p.off_run]
        if not ran:
            continue
        parts = []
        if done:
            low, high = done[0], done[-1]
            parts.append(
                f"converges in {low.iterations} iterations at LLE {_signed(low.lle)} "
                f"(gain {low.gain:g}) up to {high.iterations} at LLE {_signed(high.lle)} "
                f"(gain {high.gain:g})"
            )
        if failed:
            first = failed[0]
            parts.append(
                f"does not converge within {first.max_iter} iterations from LLE "
                f"{_signed(first.lle)} (gain {first.gain:g}; {len(failed)} of {len(ran)} "
                "gains)"
            )
        parts += [
            f"at LLE {_signed(p.lle)} (gain {p.gain:g}) its change fell under tol after "
            f"{p.iterations} iterations while still off the sequential run ({_error(p)})"
            for p in off
        ]
        positive = [p for p in done if p.lle is not None and p.lle > 0]
        if positive:
            parts.append(f"{len(positive)} converged with LLE > 0")
        yield Finding(
            f"{s.cell.upper()} {s.method}, T={s.steps}, H={s.hidden}, R x gain: "
            + "; ".join(parts)
            + "."
        )


def _timed(solves: ParallelInTime) -> Iterator[Finding]:
    groups: dict[tuple[str, str, str, str], list[TimedSolve]] = {}
    for t in solves.timed:
        groups.setdefault((t.machine, t.backend, t.cell, t.mode), []).append(t)
    for (machine, backend, cell, method), rows in sorted(groups.items()):
        longest = max(rows, key=lambda t: t.steps)
        wins = [t.steps for t in rows if t.time_ratio_ci[2] < 1]
        found = longest.parallelism_found_ci
        text = (
            f"**{machine}** {backend}, {cell.upper()} {method} (B={longest.batch}, "
            f"T={longest.steps}, H={longest.hidden}, {longest.dtype}, "
            f"{longest.iterations} iterations): **{format_ratio(longest.time_ratio_ci)}** "
            f"the step loop's time for **{longest.work_multiplier:.3g}x** its work: it ran at "
            f"{found[0]:.3g}x [{found[1]:.3g}, {found[2]:.3g}] the step loop's FLOP rate, and "
            f"break-even needs more than {longest.work_multiplier:.3g}x. It beats the step "
            "loop at "
            + (f"T = {', '.join(map(str, wins))}" if wins else "no T measured")
            + f" (T measured: {', '.join(str(t.steps) for t in rows)})."
        )
        text += (
            f" Verdict at T={longest.steps}: {longest.verdict} (predicted before it ran: "
            f"{predicted_verdict(longest)})."
        )
        if longest.headroom_ci is not None:
            text += (
                f" Recurrence penalty there {format_ratio(longest.headroom_ci)}: "
                f"{headroom(longest.work_multiplier, longest.headroom_ci)}."
            )
        yield Finding(text, instability(longest.time_ratio_ci))
