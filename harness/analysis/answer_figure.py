"""The answer's figure, one per machine: the cost of one recurrent step against the batch
(left) and against the sequence length at B=1 (right), beside the same FLOPs as one matrix
product, the roofline bound and the solve in parallel over time, with where that solve wins."""

from __future__ import annotations

from typing import Any

from harness.analysis.answer import builtin
from harness.analysis.fits import BatchSeries, Fit, Shape
from harness.analysis.measures import Analysis
from harness.analysis.penalty import PenaltyRow
from harness.analysis.roofline import step_bound
from harness.analysis.styles import style

CAPTION = "The answer: one step's cost against B and T, beside its bounds and parallel in time"


def has_data(result: Analysis, machine: str) -> bool:
    result = builtin(result)
    return bool(_batch_series(result, machine) or _length_series(result, machine))


def _batch_series(result: Analysis, machine: str) -> list[BatchSeries]:
    return [s for s in result.batch if s.machine == machine and s.mode == "forward"]


def _length_series(result: Analysis, machine: str) -> list[Fit]:
    return [f for f in result.fits if f.machine == machine and f.mode == "forward" and f.batch == 1]


def draw(result: Analysis, machine: str) -> Any:
    import matplotlib.pyplot as plt

    result = builtin(result)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 8))
    _against_batch(left, result, machine)
    _against_length(right, result, machine)
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(f"Where recurrence stops scaling on {machine}", fontsize=11)
    return fig


def _against_batch(axis: Any, result: Analysis, machine: str) -> None:
    index, bounds = 0, set()
    for series in _batch_series(result, machine):
        steps = series.steps
        batches = [p.batch for p in series.points]
        per_step = [p.median / steps * 1e6 for p in series.points]
        label = f"{series.backend} {series.cell} H={series.hidden} T={steps}"
        axis.plot(batches, per_step, label=label, **style(index))
        index += 1
        products = _products(result, series, "batch", steps)
        index = _plot_products(axis, products, "batch", label, index)
        shape = (series.cell, series.hidden, series.input_size, series.dtype, series.threads)
        bound = [] if shape in bounds else _roofline(result, series, batches)
        if bound:
            bounds.add(shape)
            name = f"roofline bound {series.cell} H={series.hidden}"
            axis.plot(batches, bound, label=name, **style(index))
            index += 1
    axis.set(xlabel="batch B", ylabel="time per step (us)", title="One step against B")


def _plot_products(
    axis: Any, products: list[PenaltyRow], along: str, label: str, index: int
) -> int:
    """The same FLOPs as one product, per step, against `along` (batch or steps); the next
    series index."""
    if not products:
        return index
    xs = [p.batch if along == "batch" else p.steps for p in products]
    ys = [p.gemm_median / p.steps * 1e6 for p in products]
    axis.plot(xs, ys, label=f"its FLOPs as one product: {label}", **style(index))
    return index + 1


def _against_length(axis: Any, result: Analysis, machine: str) -> None:
    index = 0
    for fit in _length_series(result, machine):
        steps = [p[0] for p in fit.points]
        per_step = [p[1] / p[0] * 1e6 for p in fit.points]
        label = f"{fit.backend} {fit.cell} H={fit.hidden}"
        axis.plot(steps, per_step, label=f"step loop {label}", **style(index))
        index += 1
        products = _products(result, fit, "steps", fit.batch)
        index = _plot_products(axis, products, "steps", label, index)
    solves = result.parallel_in_time
    timed = [t for t in solves.timed if t.machine == machine] if solves else []
    groups: dict[tuple[str, str, str, int], list[Any]] = {}
    for t in timed:
        groups.setdefault((t.backend, t.cell, t.mode, t.hidden), []).append(t)
    for (backend, cell, mode, hidden), rows in sorted(groups.items()):
        rows.sort(key=lambda t: t.steps)
        xs = [t.steps for t in rows]
        ys = [t.median_ci[0] / t.steps * 1e6 for t in rows]
        label = f"{mode}, parallel in time: {backend} {cell} H={hidden}"
        axis.plot(xs, ys, label=label, **style(index))
        index += 1
    wins = [t for t in timed if t.time_ratio_ci[2] < 1]
    for t in wins:
        axis.axvspan(t.steps / 1.3, t.steps * 1.3, color="#2ca02c", alpha=0.15)
    if timed:
        note = (
            "shaded: T where the parallel solve beats the step loop"
            if wins
            else "the parallel solve beats the step loop at no T measured"
        )
        axis.text(0.02, 0.02, note, transform=axis.transAxes, fontsize=8)
    axis.set(
        xlabel="sequence length T", ylabel="time per step (us)", title="One step against T, B=1"
    )


def _products(result: Analysis, series: Shape, along: str, other: int) -> list[PenaltyRow]:
    """The same FLOPs as one product for this series' shape, along `along` (batch or steps),
    the other axis at `other`."""
    fixed = (series.machine, series.backend, series.cell, series.hidden, series.input_size) + (
        series.layers,
        series.threads,
        series.dtype,
    )
    rows = [
        p
        for p in result.penalties
        if (p.machine, p.backend, p.cell, p.hidden, p.input_size, p.layers, p.threads, p.dtype)
        == fixed
        and (p.steps if along == "batch" else p.batch) == other
    ]
    return sorted(rows, key=lambda p: p.batch if along == "batch" else p.steps)


def _roofline(result: Analysis, series: BatchSeries, batches: list[int]) -> list[float]:
    """The bound alone, at each batch (no measured step here)."""
    where = (series.machine, series.device or "")
    peak = result.machine.peaks.get((*where, series.dtype, series.threads))
    memory = result.machine.memory.get((*where, series.threads))
    if peak is None or memory is None:
        return []
    return [step_bound(series, b, peak, memory).bound_s * 1e6 for b in batches]
