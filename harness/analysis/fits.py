"""latency(T) = a + b*T by weighted least squares, and batch scaling (latency(B) / latency(1))."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from harness.analysis.rows import Key, TimedRow, key, ratio
from harness.stats import Interval


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shape:
    """What the rows of one series share but its batch and its sequence length."""

    machine: str
    backend: str
    mode: str
    cell: str
    dtype: str
    input_size: int
    hidden: int
    layers: int
    bidirectional: bool
    threads: int
    model: str | None
    device: str | None

    @staticmethod
    def of(row: TimedRow) -> Mapping[str, Any]:
        """Shape's fields as `row` holds them: keyword arguments for a Fit or a BatchSeries."""
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(Shape)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fit(Shape):
    """latency(T) = a + b*T over a series of sequence lengths at one batch."""

    batch: int
    impl_class: str
    a: float
    b: float
    r2: float
    a_ci: Interval
    b_ci: Interval
    points: tuple[tuple[int, float], ...]  # (T, median seconds)

    @property
    def label(self) -> str:
        """What a plot's legend calls the series."""
        where = f"th{self.threads} @{self.machine}"
        return f"{self.backend} {self.mode} {self.cell} B={self.batch} {where}"


@dataclasses.dataclass(frozen=True)
class BatchPoint:
    batch: int
    median: float
    relative: float  # latency(B) / latency(1)
    relative_ci: Interval
    tokens_per_s: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchSeries(Shape):
    """latency(B) / latency(1) over a series of batch sizes at one sequence length."""

    steps: int
    points: tuple[BatchPoint, ...]

    @property
    def label(self) -> str:
        """What a plot's legend calls the series."""
        where = f"th{self.threads} @{self.machine}"
        return f"{self.backend} {self.mode} {self.cell} T={self.steps} {where}"


@dataclasses.dataclass(frozen=True)
class Line:
    a: float
    b: float
    r2: float


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Line:
    """Least squares y = a + b*x, weighted by 1/y^2 (relative residuals: T spans 1..1024 and
    each point's noise is a share of its size); R^2 in the same weighting."""
    w = [1.0 / (y * y) for y in ys]
    sw = sum(w)
    mx = sum(wi * x for wi, x in zip(w, xs, strict=True)) / sw
    my = sum(wi * y for wi, y in zip(w, ys, strict=True)) / sw
    sxx = sum(wi * (x - mx) ** 2 for wi, x in zip(w, xs, strict=True))
    sxy = sum(wi * (x - mx) * (y - my) for wi, x, y in zip(w, xs, ys, strict=True))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum(wi * (y - a - b * x) ** 2 for wi, x, y in zip(w, xs, ys, strict=True))
    ss_tot = sum(wi * (y - my) ** 2 for wi, y in zip(w, ys, strict=True))
    return Line(a, b, 1 - ss_res / ss_tot if ss_tot > 0 else 1.0)


def _series(
    table: Sequence[TimedRow], modes: tuple[str, ...], axis: str
) -> dict[Key, list[TimedRow]]:
    """Rows of the given modes that differ only in `axis` (steps or batch), sorted along it."""
    series: dict[Key, list[TimedRow]] = defaultdict(list)
    for row in table:
        if row.mode in modes:
            series[key(row, axis)].append(row)
    for points in series.values():
        points.sort(key=lambda r: r.steps if axis == "steps" else r.batch)
    return series


def fit_intervals(
    xs: Sequence[float], samples: Sequence[Sequence[float]], level: float = 0.95
) -> tuple[Interval, Interval]:
    """(a_ci, b_ci): the fit's a and b with a seeded percentile bootstrap interval, each
    point's samples resampled on their own (the points were timed in separate groups)."""
    import numpy as np

    from harness.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

    rng = np.random.default_rng(BOOTSTRAP_SEED)
    ys = np.stack(
        [
            np.median(rng.choice(np.asarray(s), (BOOTSTRAP_RESAMPLES, len(s))), axis=1)
            for s in samples
        ],
        axis=1,
    )  # [resample, point]
    x = np.asarray(xs, dtype=float)
    w = 1.0 / ys**2
    sw = w.sum(axis=1)
    mx, my = (w * x).sum(axis=1) / sw, (w * ys).sum(axis=1) / sw
    b = (w * (x - mx[:, None]) * (ys - my[:, None])).sum(axis=1) / (w * (x - mx[:, None]) ** 2).sum(
        axis=1
    )
    a = my - b * mx
    tail = 100 * (1 - level) / 2
    point = fit_line(xs, [float(np.median(s)) for s in samples])
    a_low, a_high = map(float, np.percentile(a, [tail, 100 - tail]))
    b_low, b_high = map(float, np.percentile(b, [tail, 100 - tail]))
    return (point.a, a_low, a_high), (point.b, b_low, b_high)


def step_fits(table: Sequence[TimedRow]) -> list[Fit]:
    """latency(T) = a + b*T for every series with at least 3 sequence lengths."""
    fits = []
    for points in _series(table, ("forward", "train", "sequential"), "steps").values():
        if len({p.steps for p in points}) < 3:
            continue
        steps = [p.steps for p in points]
        line = fit_line(steps, [p.median for p in points])
        a_ci, b_ci = fit_intervals(steps, [p.samples for p in points])
        first = points[0]
        fits.append(
            Fit(
                **Shape.of(first),
                batch=first.batch,
                impl_class=first.impl_class,
                a=line.a,
                b=line.b,
                r2=line.r2,
                a_ci=a_ci,
                b_ci=b_ci,
                points=tuple((p.steps, p.median) for p in points),
            )
        )
    return fits


def batch_scaling(table: Sequence[TimedRow]) -> list[BatchSeries]:
    """latency(B) / latency(B=1) (with its interval) and tokens (B*T) per second, for series
    with B = 1 and at least two more batch sizes."""
    out = []
    for points in _series(table, ("forward", "train"), "batch").values():
        if len(points) < 3 or points[0].batch != 1:
            continue
        base = points[0]
        out.append(
            BatchSeries(
                **Shape.of(base),
                steps=base.steps,
                points=tuple(_batch_point(p, base) for p in points),
            )
        )
    return out


def _batch_point(point: TimedRow, base: TimedRow) -> BatchPoint:
    relative = ratio(point, base)
    return BatchPoint(
        point.batch,
        point.median,
        relative[0],
        relative,
        point.batch * point.steps / point.median,
    )
