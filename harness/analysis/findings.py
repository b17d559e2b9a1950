"""The report's headline sentences, computed from the analysis: nothing here is typed in by
hand. Every quoted median and ratio carries its 95% interval; a finding whose interval could
flip its conclusion (a ratio's interval reaching 1; a figure with no such pivot, a half-width
over 25% of it) is unstable: it is kept out of the headline and listed with its reason. The
answer (analysis/answer.py) applies the same rule."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from harness import registry
from harness.analysis.measures import Analysis
from harness.analysis.mingru import MinGRURow, first_win, unclear_wins
from harness.analysis.penalty import PenaltyRow, held_penalties, settled
from harness.analysis.rows import TimedRow, ratio
from harness.analysis.stability import Finding, instability
from harness.stats import format_interval, format_ratio, format_seconds

# the standard case's (cell, B, T, I, H, layers)
STANDARD = ("lstm", 32, 100, 128, 256, 1)


def is_standard(row: TimedRow) -> bool:
    """Whether a row is of the standard case's shape."""
    shape = (row.cell, row.batch, row.steps, row.input_size, row.hidden, row.layers)
    return shape == STANDARD


def headline(result: Analysis) -> list[Finding]:
    out: list[Finding] = []
    for machine in sorted({r.machine for r in result.rows}):
        out += _standard(result, machine)
        out += _step_cost(result, machine)
        out += _peak(result, machine)
        out += _penalty(result, machine)
        out += _roofline(result, machine)
        out += _mingru(result, machine)
    out += _amdahl(result)
    out += result.parallel_in_time.findings if result.parallel_in_time else []
    out += _crossover(result)
    return out


def _standard(result: Analysis, machine: str) -> Iterator[Finding]:
    standard = sorted(
        (r for r in result.rows if r.machine == machine and is_standard(r) and r.mode == "forward"),
        key=lambda r: r.median,
    )
    if not standard:
        return
    ranked = ", ".join(
        f"{r.backend} (th{r.threads}) {format_interval(r.median_ci)}" for r in standard[:4]
    )
    wide = [r.backend for r in standard[:4] if instability(r.median_ci, None)]
    yield Finding(
        f"**{machine}**, standard LSTM case (B=32, T=100, I=128, H=256, float32) forward, "
        f"fastest first: {ranked}.",
        f"the medians of {', '.join(wide)} have intervals wider than +-25%" if wide else "",
    )
    by_target = {(r.backend, r.threads): r for r in standard}
    for threads in sorted({t for _, t in by_target}):
        ref, torch = (registry.REFERENCE, threads), (registry.HEADLINE[0], threads)
        if ref in by_target and torch in by_target:
            numpy_row, torch_row = by_target[ref], by_target[torch]
            interval = ratio(numpy_row, torch_row)
            plural = "s" if threads > 1 else ""
            yield Finding(
                f"NumPy reference / torch eager on it ({threads} thread{plural}): "
                f"**{format_ratio(interval)}**.",
                instability(interval),
            )


def _step_cost(result: Analysis, machine: str) -> Iterator[Finding]:
    for fit in result.fits:
        if (
            fit.machine == machine
            and fit.mode == "forward"
            and fit.cell == "lstm"
            and fit.hidden == 256
            and fit.backend in registry.HEADLINE
        ):
            yield Finding(
                f"An LSTM step with H=256, B={fit.batch} costs "
                f"**{format_interval(fit.b_ci)}** "
                f"in {fit.backend} (slope of latency = a + b*T, a = "
                f"{format_interval(fit.a_ci)}, R^2 {fit.r2:.3f}).",
                instability(fit.b_ci, None),
            )


def _penalty(result: Analysis, machine: str) -> Iterator[Finding]:
    """The settled penalties (penalty.settled, as the answer quotes them), each cell's range,
    and what was left out and why."""
    found = settled(result.penalties, machine)
    if found is None:
        yield from _unsettled_penalty(result, machine)
        return
    backend, mine = found
    parts = []
    for cell in sorted({p.cell for p in mine}):
        rows = [p for p in mine if p.cell == cell]
        high = max(rows, key=lambda p: p.best_penalty)
        low = min(rows, key=lambda p: p.best_penalty)
        part = f"{cell.upper()} up to **{format_ratio(high.best_penalty_ci)}** ({_at(high)})"
        if low is not high:
            part += f", down to {format_ratio(low.best_penalty_ci)} ({_at(low)})"
        parts.append(part)
    own = [p for p in result.penalties if p.machine == machine and p.backend == backend]
    recurrent = [p for p in held_penalties(result.penalties, machine) if p in own]
    single = sum(1 for p in own if p.steps == 1)
    beaten = len(own) - single - len(recurrent)
    unsettled = len(recurrent) - len(mine)
    left = [
        f"{n} {why}"
        for n, why in (
            (single, "at T=1 (no recurrence)"),
            (beaten, "that beat a product baseline (inconsistencies)"),
            (unsettled, "whose interval reaches 1"),
        )
        if n
    ]
    yield Finding(
        f"Recurrence penalty in {backend} (RNN time / the same FLOPs as the machine's best one "
        f"product, {len(mine)} cases whose interval settles it): {'; '.join(parts)}"
        + (f". Left out: {', '.join(left)}" if left else "")
        + "."
    )


def _unsettled_penalty(result: Analysis, machine: str) -> Iterator[Finding]:
    """No penalty settled: the largest one measured, left out with why."""
    held = held_penalties(result.penalties, machine)
    if held:
        worst = max(held, key=lambda p: p.best_penalty)
        yield Finding(
            f"Recurrence penalty in {worst.backend}: up to "
            f"{format_ratio(worst.best_penalty_ci)} ({_at(worst)}); no case settles it.",
            instability(worst.best_penalty_ci),
        )


def _at(p: PenaltyRow) -> str:
    return (
        f"B={p.batch}, T={p.steps}, H={p.hidden}, L={p.layers}, against {p.best_backend}'s product"
    )


def _roofline(result: Analysis, machine: str) -> Iterator[Finding]:
    for roof in result.roofline:
        fit, bound = roof.fit, roof.bound
        if (
            fit.machine == machine
            and fit.batch == 1
            and fit.hidden == 256
            and roof.times_bound >= 1
        ):
            memory = (
                f"memory term unknown: {bound.memory_note}"
                if bound.memory_bound_s is None
                else f"memory term {format_seconds(bound.memory_bound_s)} in {bound.level}"
            )
            yield Finding(
                f"Roofline of one B=1 step ({fit.backend}, every FLOP of the step: x.W, "
                f"h.R, gates): measured {format_seconds(roof.step_s)} against a "
                f"{bound.limited_by}-bound {format_seconds(bound.bound_s)} "
                f"({roof.times_bound:.2f}x the bound; {memory})."
            )


def _peak(result: Analysis, machine: str) -> Iterator[Finding]:
    for (m, device, dtype, threads), peak in sorted(result.machine.peaks.items()):
        if m == machine:
            theory = (
                f"{peak.theoretical / 1e9:.0f} GFLOP/s ({peak.theoretical_note})"
                if peak.theoretical
                else peak.theoretical_note
            )
            yield Finding(
                f"Best product measured on {device}, {dtype}, {threads} thread"
                f"{'s' if threads > 1 else ''}: **{peak.flops / 1e9:.0f} GFLOP/s** "
                f"[{peak.flops_ci[1] / 1e9:.0f}, {peak.flops_ci[2] / 1e9:.0f}] ({peak.backend}, "
                f"{peak.size}); theoretical peak {theory}."
            )


def _mingru(result: Analysis, machine: str) -> Iterator[Finding]:
    mingru = [r for r in result.mingru if r.machine == machine]
    for backend in sorted({r.backend for r in mingru}):
        series = [r for r in mingru if r.backend == backend]
        over_gru = first_win(series, "mingru-scan", "gru")
        over_loop = first_win(series, "mingru-scan", "mingru-loop")
        text = (
            f"minGRU in {backend}: its parallel scan beats GRU {_when(over_gru, series)}"
            f" and beats minGRU's own step loop {_when(over_loop, series)}"
        )
        unclear = [
            f"{what} at T = {', '.join(map(str, steps))}"
            for what, steps in (
                ("over GRU", unclear_wins(series, "scan_over_gru", over_gru)),
                ("over the loop", unclear_wins(series, "scan_over_loop", over_loop)),
            )
            if steps
        ]
        reason = f"the win's interval reaches 1 {'; '.join(unclear)}" if unclear else ""
        yield Finding(text + _longest(series) + ".", reason)


def _longest(series: list[MinGRURow]) -> str:
    longest = max(series, key=lambda r: r.steps)
    if longest.loop is None or longest.scan is None:
        return ""
    parts = [f"scan {format_interval(longest.scan)}", f"loop {format_interval(longest.loop)}"]
    if longest.gru is not None:
        parts.append(f"GRU {format_interval(longest.gru)}")
    return f" (T={longest.steps}: {', '.join(parts)})"


def _when(steps: int | None, series: Sequence[MinGRURow]) -> str:
    if steps is None:
        return "at no T measured"
    if steps == min(r.steps for r in series):
        return f"at every T measured ({steps} to {max(r.steps for r in series)})"
    return f"from T = {steps}"


def _amdahl(result: Analysis) -> Iterator[Finding]:
    for row in result.amdahl:
        shape = (row.input_size, row.hidden, row.layers)
        if row.cell in ("lstm", "gru") and shape == (128, 256, 1):
            yield Finding(
                f"{row.cell.upper()} I=128, H=256: {100 * row.parallel_share:.0f}% "
                "of the FLOPs (the input projection) can run in parallel over time while h @ R "
                "runs step by step; counting FLOP shares as time shares (an assumption: the "
                "measured step loop is slower per FLOP than the product), Amdahl bounds the "
                f"speed-up of such methods at {row.max_speedup:.2f}x. Newton's method in "
                "time parallelises h @ R too, at the price of a work multiplier (see Parallel "
                "in time)."
            )


def _crossover(result: Analysis) -> Iterator[Finding]:
    shared = result.crossover
    if not shared:
        return
    wins = [c for c in shared if c.gpu_speedup_ci[1] > 1]
    losses = [c for c in shared if c.gpu_speedup_ci[2] < 1]
    unclear = len(shared) - len(wins) - len(losses)
    yield Finding(
        f"CPU against GPU on {len(shared)} shared shapes: the GPU wins {len(wins)}, the CPU "
        f"{len(losses)}"
        + (f", {unclear} too close to call (interval reaching 1)" if unclear else "")
        + "."
    )


def findings_markdown(findings: list[Finding]) -> str:
    """The stable findings as a list, then the unstable ones with their reasons."""
    lines = [f"- {f.text}" for f in findings if not f.unstable]
    unstable = [f for f in findings if f.unstable]
    if unstable:
        lines += [
            "",
            f"Left out as unstable ({len(unstable)}): the samples' 95% intervals could flip "
            "these conclusions.",
            "",
        ]
        lines += [f"- {f.text} *Unstable: {f.unstable}.*" for f in unstable]
    return "\n".join(lines)
