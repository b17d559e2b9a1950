"""The answer first: per machine, at most MAX_SENTENCES sentences computed from the analysis,
each quoting measured figures with their 95% intervals, that say where recurrence stops scaling
there. In order: the fastest backend on the standard case; what one streamed step costs on the
best backend against its in-sequence floor, and how many streams the machine serves under each
p99 target (harness/analysis/streaming_views.py); each cell's per-step floor at B=1 and
what bounds it (a memory level, the product peak, or dispatch when the step runs far over its
roofline bound); the batch from which each cell's step is compute-bound; the penalty of
recurrence against the same FLOPs as one product across B and T; and where evaluating the
recurrence in parallel over time wins or loses there, and why. A sentence whose data the
results lack is left out; a figure whose interval is too wide to carry it is not the one quoted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from harness.analysis import streaming_views
from harness.analysis.findings import is_standard
from harness.analysis.fits import Fit
from harness.analysis.measures import Analysis
from harness.analysis.parallel_in_time import ParallelInTime, TimedSolve
from harness.analysis.penalty import PenaltyRow, settled
from harness.analysis.roofline import GATE_FLOPS, RooflineRow, step_bound
from harness.analysis.rows import TimedRow, ratio
from harness.machine.model import Memory, Peak
from harness.stats import format_interval, format_ratio, format_seconds

MAX_SENTENCES = 10  # 8, and the two of streaming (a streamed step, the streams served)
# A step that costs more than this many times its roofline bound is set by per-step dispatch
# (framework and kernel-launch overhead), not by the machine's compute or memory.
DISPATCH = 2.0
BATCHES = tuple(2**k for k in range(17))  # where the roofline's compute-bound batch is sought


def answers(result: Analysis) -> list[tuple[str, list[str]]]:
    """(machine, its sentences) for every machine that timed the built-in suites' models (a
    user's model has its own section)."""
    result = builtin(result)
    out = []
    for machine in sorted({r.machine for r in result.rows}):
        sentences = [
            *_fastest(result, machine),
            *streaming_views.answer(result.streaming, machine),
            *_floor(result, machine),
            *_compute_bound(result, machine),
            *_penalty(result, machine),
            *_parallel_in_time(result, machine),
        ]
        if sentences:
            out.append((machine, sentences[:MAX_SENTENCES]))
    return out


def builtin(result: Analysis) -> Analysis:
    """The analysis without the rows, fits and timings of a user's model."""
    solves = result.parallel_in_time
    if solves:
        solves = dataclasses.replace(solves, timed=[t for t in solves.timed if not t.model])
    return dataclasses.replace(
        result,
        rows=[r for r in result.rows if not r.model],
        fits=[f for f in result.fits if not f.model],
        batch=[b for b in result.batch if not b.model],
        penalties=[p for p in result.penalties if not p.model],
        roofline=[r for r in result.roofline if not r.fit.model],
        parallel_in_time=solves,
    )


def markdown(sentences: list[str]) -> str:
    return "\n".join(f"- {s}" for s in sentences)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _cell(fit: Fit) -> str:
    return f"{fit.cell.upper()} (I={fit.input_size}, H={fit.hidden}, {fit.dtype})"


def _range(values: Iterable[int]) -> str:
    ordered = sorted(set(values))
    return str(ordered[0]) if len(ordered) == 1 else f"{ordered[0]}-{ordered[-1]}"


def _fastest(result: Analysis, machine: str) -> Iterator[str]:
    """Each backend at its best thread count (a GPU backend's case runs at one), fastest
    first."""
    best: dict[str, TimedRow] = {}
    for r in result.rows:
        if r.machine != machine or r.mode != "forward" or not is_standard(r):
            continue
        if r.backend not in best or r.median < best[r.backend].median:
            best[r.backend] = r
    if not best:
        return
    ranked = sorted(best.values(), key=lambda r: r.median)
    first = ranked[0]
    text = (
        f"Fastest on the standard LSTM (B=32, T=100, I=128, H=256, {first.dtype}): "
        f"**{first.backend}** ({first.device}, {_plural(first.threads, 'thread')}), "
        f"{format_interval(first.median_ci)}"
    )
    if len(ranked) > 1:
        second = ranked[1]
        interval = ratio(second, first)
        verdict = (
            "too close to call" if interval[1] <= 1 <= interval[2] else "slower, interval and all"
        )
        text += f"; the next, {second.backend}, takes {format_ratio(interval)} its time ({verdict})"
    yield text + f"; {_plural(len(ranked), 'backend')} timed."


def _floors(result: Analysis, machine: str) -> list[Fit]:
    """Per (cell, H, I, dtype, device), the forward step-cost fit at B=1 with the smallest
    slope of any backend (one that beats its bound is still the floor: the bound is wrong)."""
    best: dict[tuple[str, int, int, str, str | None], Fit] = {}
    for fit in result.fits:
        if fit.machine != machine or fit.mode != "forward" or fit.batch != 1:
            continue
        if fit.cell not in GATE_FLOPS:
            continue
        shape = (fit.cell, fit.hidden, fit.input_size, fit.dtype, fit.device)
        if shape not in best or fit.b < best[shape].b:
            best[shape] = fit
    return [best[k] for k in sorted(best, key=str)]


def _series(fit: Fit) -> tuple[object, ...]:
    """What a roofline row and a fit share when they are of one series."""
    shape = (fit.cell, fit.dtype, fit.batch, fit.hidden, fit.input_size, fit.layers)
    return (fit.machine, fit.backend, *shape, fit.threads)


def _roof_of(result: Analysis, fit: Fit) -> RooflineRow | None:
    return next((r for r in result.roofline if _series(r.fit) == _series(fit)), None)


def _floor(result: Analysis, machine: str) -> Iterator[str]:
    parts = []
    for fit in _floors(result, machine):
        part = f"{_cell(fit)} {format_interval(fit.b_ci)} in {fit.backend}"
        roof = _roof_of(result, fit)
        parts.append(part + (_bounded_by(roof) if roof else " (no product peak to bound it)"))
    if parts:
        yield f"One step at B=1 costs at least (fastest backend timed): {'; '.join(parts)}."


def _bounded_by(roof: RooflineRow) -> str:
    times, bound = roof.times_bound, roof.bound
    limit = (
        f"{bound.level} bandwidth ({format_seconds(bound.bound_s)})"
        if bound.limited_by == "memory"
        else f"the product peak ({format_seconds(bound.bound_s)})"
    )
    if times < 1 and roof.step_ci[2] < bound.bound_s:
        return (
            f", under its bound by {limit}: that bound is wrong, a measured limit understated "
            "(see Inconsistencies)"
        )
    if times < 1:
        return f", at its bound by {limit} (under it, within its interval): the machine sets it"
    if times <= DISPATCH:
        return f", {times:.2f}x its bound by {limit}: the machine sets it"
    return f", {times:.1f}x its bound by {limit}: dispatch, not the machine, sets it"


def _crossing(fit: Fit, peak_flops: float, peak: Peak, memory: Memory) -> int | None:
    """The smallest batch at which the step's compute term reaches its memory term (None:
    the memory term is unknown, or no batch searched reaches it)."""
    for batch in BATCHES:
        bound = step_bound(fit, batch, peak, memory, peak_flops)
        if bound.memory_bound_s is None:
            return None
        if bound.limited_by == "compute":
            return batch
    return None


def _compute_bound(result: Analysis, machine: str) -> Iterator[str]:
    """For each cell's floor: the batch from which the roofline makes its step compute-bound
    (with the range the peak's interval gives) and, where timed, what that batch cost."""
    parts: list[str] = []
    peaks: dict[str, tuple[Peak, str]] = {}
    for fit in _floors(result, machine):
        device = fit.device or ""
        peak = result.machine.peaks.get((machine, device, fit.dtype, fit.threads))
        memory = result.machine.memory.get((machine, device, fit.threads))
        if peak is None or memory is None:
            continue
        found = [_crossing(fit, flops, peak, memory) for flops in peak.flops_ci]
        at = [b for b in found if b is not None]
        if len(at) < len(found):
            continue
        level = step_bound(fit, at[0], peak, memory).level
        peaks[peak.id] = (peak, level)
        low, high = min(at[1:]), max(at[1:])
        roof = _roof_of(result, fit)
        # a B=1 step under its memory term: the bandwidth is understated, so the memory term
        # and the batch where compute overtakes it are overstated
        memory_s = roof.bound.memory_bound_s if roof is not None else None
        beaten = roof is not None and memory_s is not None and roof.step_ci[2] < memory_s
        parts.append(
            f"{_cell(fit)} from **B{'<=' if beaten else '='}{at[0]}** [{low}, {high}]"
            + (" (at most: its B=1 step beats the memory term)" if beaten else "")
            + _batch_cost(result, machine, fit, at[0])
        )
    if not parts:
        return
    limits = "; ".join(
        f"{p.flops / 1e9:.0f} GFLOP/s [{p.flops_ci[1] / 1e9:.0f}, {p.flops_ci[2] / 1e9:.0f}] "
        f"against the copy bandwidth in {level}"
        for p, level in peaks.values()
    )
    yield f"By the roofline ({limits}), a step turns compute-bound: {'; '.join(parts)}."


def _batch_cost(result: Analysis, machine: str, fit: Fit, crossing: int) -> str:
    series = [
        s
        for s in result.batch
        if s.machine == machine
        and s.mode == "forward"
        and (s.backend, s.cell, s.hidden, s.dtype, s.threads)
        == (fit.backend, fit.cell, fit.hidden, fit.dtype, fit.threads)
    ]
    if not series:
        return ""
    points = series[0].points
    past = [p for p in points if p.batch >= crossing and p.batch > 1] or points[-1:]
    shown = [past[0], points[-1]] if past[0] is not points[-1] else [points[-1]]
    cost = " and ".join(f"B={p.batch} {format_ratio(p.relative_ci)}" for p in shown)
    return f" (measured in {fit.backend} at T={series[0].steps}, B=1's time x {cost})"


def _penalty(result: Analysis, machine: str) -> Iterator[str]:
    """Over the settled penalties (penalty.settled)."""
    found = settled(result.penalties, machine)
    if found is None:
        return
    backend, mine = found
    low = min(mine, key=lambda p: p.best_penalty)
    high = max(mine, key=lambda p: p.best_penalty)
    span = f"B {_range([p.batch for p in mine])} and T {_range([p.steps for p in mine])}"
    if low is high or low.best_penalty_ci == high.best_penalty_ci:
        figure = f"**{format_ratio(high.best_penalty_ci)}** ({_shape(high)})"
    else:
        figure = (
            f"{format_ratio(low.best_penalty_ci)} ({_shape(low)}) to "
            f"**{format_ratio(high.best_penalty_ci)}** ({_shape(high)})"
        )
    yield (
        f"Recurrence costs {backend} {figure} the time of the same FLOPs as one matrix product, "
        f"over {span} ({_plural(len(mine), 'case')} whose interval settles it)."
    )


def _shape(p: PenaltyRow) -> str:
    return f"{p.cell.upper()} B={p.batch} T={p.steps} H={p.hidden}"


def _parallel_in_time(result: Analysis, machine: str) -> Iterator[str]:
    solves = result.parallel_in_time
    timed = [t for t in solves.timed if t.machine == machine] if solves else []
    if not solves or not timed:
        return
    yield _where_it_wins(timed)
    yield _why(timed)
    limit = _lle_limit(solves)
    if limit:
        yield limit


def _where_it_wins(timed: list[TimedSolve]) -> str:
    wins = [t for t in timed if t.time_ratio_ci[2] < 1]
    losses = [t for t in timed if t.time_ratio_ci[1] > 1]
    undecided = len(timed) - len(wins) - len(losses)
    tally = f"it loses in {len(losses)} of {len(timed)}" + (
        f", {undecided} too close to call" if undecided else ""
    )
    if wins:
        best = min(wins, key=lambda t: t.time_ratio_ci[0])
        others = len(wins) - 1
        return (
            f"Evaluated in parallel over time, the recurrence beats the step loop: "
            f"{best.cell.upper()} {best.mode} at T={best.steps} takes "
            f"**{format_ratio(best.time_ratio_ci)}** the loop's time ({best.backend}, "
            f"B={best.batch}, H={best.hidden})"
            + (f", and {others} more case{' wins' if others == 1 else 's win'}" if others else "")
            + f"; {tally}."
        )
    best = min(timed, key=lambda t: t.time_ratio_ci[0])
    closest = (
        f"the closest, {best.cell.upper()} {best.mode} at T={best.steps} "
        f"({best.backend}, B={best.batch}, H={best.hidden}), takes "
        f"**{format_ratio(best.time_ratio_ci)}** the step loop's time"
    )
    if best.time_ratio_ci[1] <= 1:
        return (
            "Evaluated in parallel over time, the recurrence wins nowhere the interval settles: "
            f"{closest}, an interval reaching 1; {tally}."
        )
    return f"Evaluated in parallel over time, the recurrence loses everywhere measured: {closest}."


def _why(timed: list[TimedSolve]) -> str:
    parts = []
    for method in ("newton", "quasi-newton"):
        rows = [t for t in timed if t.mode == method]
        if not rows:
            continue
        fastest = max(rows, key=lambda t: t.parallelism_found_ci[0])
        work = sorted(t.work_multiplier for t in rows)
        spread = f"{work[0]:.3g}x" if work[0] == work[-1] else f"{work[0]:.3g}-{work[-1]:.3g}x"
        parts.append(
            f"{method} takes {_range([t.iterations for t in rows])} iterations for {spread} "
            f"the loop's work and runs it at up to {format_ratio(fastest.parallelism_found_ci)} "
            "the loop's FLOP rate"
        )
    lle = sorted(t.lle for t in timed if t.lle is not None)
    at = f" (models at LLE {lle[0]:.2f} to {lle[-1]:.2f})" if lle else ""
    return (
        f"Why{at}: {'; '.join(parts)}; it wins only where that rate gain exceeds the work "
        "multiplier."
    )


def _lle_span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:+.2f}" if f"{low:+.2f}" == f"{high:+.2f}" else f"{low:+.2f} to {high:+.2f}"


def _lle_limit(solves: ParallelInTime) -> str:
    """The largest Lyapunov exponent from which the sweeps' solves stop converging within
    their iteration limits (the sweeps are counted, not timed: the same on any machine)."""
    first_failures: list[float] = []
    solved_at: list[float] = []
    limits: set[str] = set()
    for series in solves.by_gain:
        failed = [(p, p.lle) for p in series.points if p.lle is not None and not p.solved]
        solved_at += [p.lle for p in series.points if p.lle is not None and p.solved]
        if failed:
            first_failures.append(min(lle for _, lle in failed))
            limits.add(f"{series.method} {failed[0][0].max_iter}")
    if not first_failures or not solved_at:
        return ""
    return (
        "Both need a contracting model: in the gain sweeps (float64) they stop converging "
        f"within their iteration limits ({', '.join(sorted(limits))}) from LLE "
        f"{_lle_span(first_failures)} ({len(first_failures)} of "
        f"{len(solves.by_gain)} series), and solve up to LLE {max(solved_at):+.2f}."
    )
