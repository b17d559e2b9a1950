"""The report's matplotlib figures, each saved as DIR/img/NAME.png and kept as PNG bytes for
the standalone HTML."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.analysis import parallel_in_time_views as parallel_in_time_views
from harness.analysis import streaming_views
from harness.analysis.fits import BatchSeries, Fit
from harness.analysis.measures import Analysis
from harness.analysis.mingru import LABELS, MinGRURow
from harness.analysis.parity_files import ParityGrid
from harness.analysis.penalty import EfficiencyRow, PenaltyRow, is_held
from harness.analysis.styles import Series, style
from harness.atomic import atomic_open
from harness.machine.model import Memory, MemoryKey

CAPTIONS = {
    "latency_vs_T": "Latency against sequence length (log-log), with the fitted a + b*T",
    "batch_scaling": "Batch scaling: relative latency and tokens per second",
    "recurrence_penalty": "Recurrence penalty: RNN time over the same FLOPs as one product",
    "share_of_peak": "Achieved share of the best matrix product measured",
    "bandwidth_curve": "Copy bandwidth against working-set size, cache sizes marked",
    "gru_vs_mingru": "GRU against minGRU's parallel scan and step loop",
    "parity_heatmap": "Parity heatmap from the parity report",
    **parallel_in_time_views.CAPTIONS,
    streaming_views.CURVE: streaming_views.CAPTION,
}


class Figures:
    """Each plot saved as DIR/img/NAME.png and kept as PNG bytes for the HTML."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.png: dict[str, bytes] = {}
        self.series: dict[str, list[Series]] = {}

    def save(self, name: str, fig: Any) -> str:
        import matplotlib.pyplot as plt

        from harness.analysis.styles import labelled_series

        self.series[name] = labelled_series(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.png[name] = buffer.getvalue()
        with atomic_open(self.folder / "img" / f"{name}.png") as handle:
            handle.write(self.png[name])
        return name


def plot_all(result: Analysis, heat: ParityGrid | None, figures: Figures) -> list[str]:
    """Every plot the data allows, in report order; heat: parity_grid's answer or None."""
    import matplotlib

    matplotlib.use("Agg")
    # what beats its limit is listed under Inconsistencies, never drawn as over 100% or under 1x
    peak_rows = [
        r
        for r in result.efficiency
        if r.fraction_of_peak and r.fraction_of_peak <= 1 and r.steps >= 64
    ]
    # the penalties the sentences quote: a recurrence (T > 1) no product beats
    held = [p for p in result.penalties if is_held(p)]
    curves = {k: m for k, m in result.machine.memory.items() if len(m.curve) >= 2}
    plots: tuple[tuple[str, Callable[[Any], Any], Any], ...] = (
        ("latency_vs_T", latency_vs_steps, [f for f in result.fits if f.mode == "forward"]),
        ("batch_scaling", batch_scaling, result.batch),
        ("recurrence_penalty", recurrence_penalty, held),
        ("share_of_peak", share_of_peak, peak_rows),
        ("bandwidth_curve", bandwidth_curve, curves),
        ("gru_vs_mingru", gru_vs_mingru, result.mingru),
        *parallel_in_time_views.plots(result.parallel_in_time),
        *streaming_views.plots(result.streaming),
        ("parity_heatmap", parity_heatmap, heat),
    )
    return [figures.save(name, draw(data)) for name, draw, data in plots if data]


def latency_vs_steps(fits: list[Fit]) -> Any:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for index, fit in enumerate(fits):
        look = style(index)
        steps = [p[0] for p in fit.points]
        seconds = [p[1] for p in fit.points]
        marks = {**look, "linestyle": "none"}
        left.loglog(steps, [s * 1e3 for s in seconds], label=fit.label, **marks)
        lo, hi = min(steps), max(steps)
        grid = [lo * (hi / lo) ** (i / 50) for i in range(51)]
        fitted = [(fit.a + fit.b * t) * 1e3 for t in grid]
        left.loglog(grid, fitted, color=look["color"], linestyle=look["linestyle"], alpha=0.6)
        per_step = [s / t * 1e6 for s, t in zip(seconds, steps, strict=True)]
        right.semilogx(steps, per_step, label=fit.label, **look)
    left.set(
        xlabel="sequence length T",
        ylabel="latency (ms)",
        title="Latency against T, with fitted a + b*T",
    )
    right.set_yscale("log")
    right.set(
        xlabel="sequence length T",
        ylabel="latency / T (us per step)",
        title="Per-step latency: fixed cost amortised over T",
    )
    left.legend(fontsize=7)
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
    return fig


def batch_scaling(batch: list[BatchSeries]) -> Any:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for index, series in enumerate(batch):
        b = [p.batch for p in series.points]
        relative = [p.relative for p in series.points]
        left.loglog(b, relative, label=series.label, **style(index))
        right.loglog(b, [p.tokens_per_s for p in series.points], **style(index))
    largest = max(p.batch for s in batch for p in s.points)
    left.loglog([1, largest], [1, largest], "k:", label="linear (no batching gain)")
    left.set(xlabel="batch B", ylabel="latency(B) / latency(1)", title="Batch scaling")
    right.set(xlabel="batch B", ylabel="tokens (B*T) per second", title="Throughput")
    left.legend(fontsize=7)
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
    return fig


def recurrence_penalty(penalties: list[PenaltyRow]) -> Any:
    """Bars with the 95% interval of each penalty as an error bar."""
    import matplotlib.pyplot as plt

    rows = sorted(penalties, key=lambda r: (r.backend, r.batch, r.steps))
    fig, axis = plt.subplots(figsize=(13, max(3, 0.22 * len(rows))))
    labels = [
        f"{r.backend} {r.cell} B={r.batch} T={r.steps} H={r.hidden} th{r.threads}" for r in rows
    ]
    estimate = [r.penalty for r in rows]
    spread = [
        [e - r.penalty_ci[1] for e, r in zip(estimate, rows, strict=True)],
        [r.penalty_ci[2] - e for e, r in zip(estimate, rows, strict=True)],
    ]
    axis.barh(labels, estimate, xerr=spread, error_kw={"lw": 0.8})
    axis.axvline(1, color="k", lw=0.8)
    axis.set(
        xscale="log",
        xlabel="RNN time / time of its FLOPs as one product (x)",
        title="Recurrence penalty",
    )
    axis.tick_params(axis="y", labelsize=7)
    return fig


def share_of_peak(efficiency: list[EfficiencyRow]) -> Any:
    import matplotlib.pyplot as plt

    rows = sorted(efficiency, key=lambda r: -(r.fraction_of_peak or 0))[:40]
    fig, axis = plt.subplots(figsize=(13, max(3, 0.22 * len(rows))))
    axis.barh([r.id for r in rows], [100 * (r.fraction_of_peak or 0) for r in rows])
    axis.set(xlabel="% of the measured matrix-product peak", title="Share of peak (T >= 64)")
    axis.tick_params(axis="y", labelsize=6)
    axis.invert_yaxis()
    return fig


def bandwidth_curve(memories: dict[MemoryKey, Memory]) -> Any:
    """Copy bandwidth per working set (log-x): what each probe measured (points, once per
    machine and device) and the bound drawn from it for each thread count (lines), with each
    cache level's capacity for those threads as a dotted vertical line."""
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(9, 5))
    measured = set()
    for index, ((machine, device, threads), memory) in enumerate(sorted(memories.items())):
        look = style(index)
        if (machine, device) not in measured:
            measured.add((machine, device))
            axis.semilogx(
                [p.size for p in memory.probes],
                [p.rate / 1e9 for p in memory.probes],
                label=f"{machine} {device}: measured",
                **{**look, "linestyle": "none"},
            )
        (line,) = axis.semilogx(
            [p[0] for p in memory.curve],
            [p[1] / 1e9 for p in memory.curve],
            label=f"{machine} {device} th{threads}: bound",
            **{**look, "marker": None},
        )
        for name, capacity in memory.levels:
            axis.axvline(capacity, color=line.get_color(), ls=":", lw=0.8)
            axis.annotate(f"{name} th{threads}", (capacity, 0), fontsize=7, rotation=90)
    axis.set(
        xlabel="working set (bytes, read + write)",
        ylabel="GB/s",
        title="Copy bandwidth: measured, and the bound at each thread count",
    )
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    return fig


def gru_vs_mingru(mingru: list[MinGRURow]) -> Any:
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 5))
    index = 0
    for backend in sorted({r.backend for r in mingru}):
        series = [r for r in mingru if r.backend == backend]
        for label in LABELS:
            found = [(r.steps, r.median_ci(label)) for r in series]
            points = [(steps, median[0]) for steps, median in found if median is not None]
            if points:
                steps, ms = [p[0] for p in points], [p[1] * 1e3 for p in points]
                axis.loglog(steps, ms, label=f"{label} {backend}", **style(index))
                index += 1
    axis.set(
        xlabel="sequence length T",
        ylabel="latency (ms)",
        title="GRU (T dependent steps) against minGRU (parallel scan, step loop)",
    )
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    return fig


def parity_heatmap(heat: ParityGrid) -> Any:
    """Each cell: the worst share of the pass rule's tolerance (FAIL over 1, inf included)."""
    import matplotlib.pyplot as plt

    backends, columns, values = heat.backends, heat.columns, heat.values
    fig, axis = plt.subplots(figsize=(1 + 0.9 * len(columns), 1 + 0.35 * len(backends)))
    shown = [[min(v, 2.0) if v is not None else math.nan for v in row] for row in values]
    image = axis.imshow(shown, cmap="YlGn", vmin=0, vmax=1, aspect="auto")
    axis.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(len(backends)), backends, fontsize=7)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            text, color = heat_label(v)
            axis.text(j, i, text, ha="center", va="center", fontsize=6, color=color)
    fig.colorbar(image, label="worst |error| / (atol + rtol |ref|)")
    title = "Parity: every backend against the NumPy float64 reference"
    if heat.note:
        title += f"\n{heat.note}"
    axis.set_title(title, fontsize=9)
    return fig


def heat_label(share: float | None) -> tuple[str, str]:
    """The text and its colour in one heatmap cell: skip, FAIL (share over 1) or the share."""
    if share is None:
        return "skip", "gray"
    if share > 1:
        return "FAIL", "red"
    return f"{100 * share:.0f}%", "black"
