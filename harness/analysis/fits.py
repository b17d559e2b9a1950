"""latency(T) = a + b*T by weighted least squares, and batch scaling (latency(B) / latency(1))."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.analysis.rows import key, ratio


def fit_line(xs, ys) -> dict[str, float]:
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
    return {"a": a, "b": b, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def _series(table: list[dict], modes: tuple[str, ...], axis: str) -> dict[tuple, list[dict]]:
    """Rows of the given modes that differ only in `axis`, sorted along it."""
    series = defaultdict(list)
    for row in table:
        if row["mode"] in modes:
            series[key(row, axis)].append(row)
    for points in series.values():
        points.sort(key=lambda r: r[axis])
    return series


def fit_intervals(xs, samples, level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """a_ci and b_ci: the fit's a and b with a seeded percentile bootstrap interval, each
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
    return {
        f"{name}_ci": (point[name], *map(float, np.percentile(values, [tail, 100 - tail])))
        for name, values in (("a", a), ("b", b))
    }


def step_fits(table: list[dict]) -> list[dict[str, Any]]:
    """latency(T) = a + b*T for every series with at least 3 sequence lengths."""
    fits = []
    for series_key, points in _series(table, ("forward", "train", "sequential"), "steps").items():
        if len({p["steps"] for p in points}) < 3:
            continue
        fit = fit_line([p["steps"] for p in points], [p["median"] for p in points])
        fits.append(
            {
                **dict(series_key),
                **fit,
                **fit_intervals([p["steps"] for p in points], [p["samples"] for p in points]),
                "points": [(p["steps"], p["median"]) for p in points],
                "impl_class": points[0]["impl_class"],
                "device": points[0]["device"],
            }
        )
    return fits


def batch_scaling(table: list[dict]) -> list[dict[str, Any]]:
    """latency(B) / latency(B=1) (with its interval) and tokens (B*T) per second, for series
    with B = 1 and at least two more batch sizes."""
    out = []
    for series_key, points in _series(table, ("forward", "train"), "batch").items():
        if len(points) < 3 or points[0]["batch"] != 1:
            continue
        base = points[0]
        points = [_batch_point(p, base) for p in points]
        out.append({**dict(series_key), "device": base["device"], "points": points})
    return out


def _batch_point(point: dict, base: dict) -> dict[str, Any]:
    relative = ratio(point, base)
    return {
        "batch": point["batch"],
        "median": point["median"],
        "relative": relative[0],
        "relative_ci": relative,
        "tokens_per_s": point["batch"] * point["steps"] / point["median"],
    }
