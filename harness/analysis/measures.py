"""What the timings mean: latency(T) = a + b*T fits, batch scaling, the recurrence penalty
against the same FLOPs as one product, % of the measured peak, the per-step roofline, the
Amdahl bound of parallelising over time, minGRU against GRU, and the CPU/GPU crossover.

Input: results documents (several machines merge; each row carries its machine label).
Output: plain dicts and lists, which the report turns into tables and plots."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from harness.bench import flops

GEMM_TARGET = {
    "numpy": "numpy",
    "cupy": "cupy",
    "torch-cpu": "torch-cpu",
    "torch-cpu-compile": "torch-cpu",
    "torch-cuda": "torch-cuda",
    "torch-cuda-graphs": "torch-cuda",
    "tf-eager": "tf-function",
    "tf-function": "tf-function",
    "tf-xla": "tf-function",
}


def device_of(target: str) -> str:
    return "gpu" if any(k in target for k in ("cuda", "cupy", "tensorrt")) else "cpu"


def rows(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per timed case: machine, the case's fields, median seconds, and work. A case
    timed in several files of one machine counts once: the later file's timing wins."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        machine = doc["environment"].get("machine", "?")
        for record in doc["cases"]:
            if record["status"] != "ok":
                continue
            row = {
                **record["case"],
                "machine": machine,
                "id": record["id"],
                "median": record["stats"]["median"],
                "iqr": record["stats"]["iqr"],
                "flops": record["flops"],
                "bytes": record["bytes"],
                "impl_class": record["impl_class"],
            }
            row["device"] = device_of(row["target"])
            out[(machine, record["id"])] = row
    return list(out.values())


def _key(row, *drop) -> tuple:
    fields = (
        "machine",
        "target",
        "mode",
        "cell",
        "dtype",
        "batch",
        "steps",
        "input_size",
        "hidden",
        "layers",
        "threads",
    )
    return tuple((f, row[f]) for f in fields if f not in drop)


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


def step_fits(table: list[dict]) -> list[dict[str, Any]]:
    """latency(T) = a + b*T for every series with at least 3 sequence lengths."""
    series = defaultdict(list)
    for row in table:
        if row["mode"] in ("forward", "train", "sequential"):
            series[_key(row, "steps")].append(row)
    fits = []
    for key, points in series.items():
        points.sort(key=lambda r: r["steps"])
        if len({p["steps"] for p in points}) < 3:
            continue
        fit = fit_line([p["steps"] for p in points], [p["median"] for p in points])
        fits.append(
            {
                **dict(key),
                **fit,
                "points": [(p["steps"], p["median"]) for p in points],
                "impl_class": points[0]["impl_class"],
            }
        )
    return fits


def batch_scaling(table: list[dict]) -> list[dict[str, Any]]:
    """latency(B) / latency(B=1) and tokens (B*T) per second, for series with B = 1 and more."""
    series = defaultdict(list)
    for row in table:
        if row["mode"] in ("forward", "train"):
            series[_key(row, "batch")].append(row)
    out = []
    for key, points in series.items():
        points.sort(key=lambda r: r["batch"])
        if len(points) < 3 or points[0]["batch"] != 1:
            continue
        base = points[0]["median"]
        out.append(
            {
                **dict(key),
                "points": [
                    {
                        "batch": p["batch"],
                        "median": p["median"],
                        "relative": p["median"] / base,
                        "tokens_per_s": p["batch"] * p["steps"] / p["median"],
                    }
                    for p in points
                ],
            }
        )
    return out


def penalties(table: list[dict]) -> list[dict[str, Any]]:
    """RNN time / time of its FLOPs as one product per layer, same library, threads, device,
    machine and run: the price of doing the work one step at a time."""
    gemm = {
        _key(r, "target", "mode") + (("target", r["target"]),): r
        for r in table
        if r["mode"] == "gemm"
    }
    out = []
    for row in table:
        if row["mode"] != "forward" or row["target"] not in GEMM_TARGET:
            continue
        match = gemm.get(_key(row, "target", "mode") + (("target", GEMM_TARGET[row["target"]]),))
        if match:
            out.append(
                {**row, "gemm_median": match["median"], "penalty": row["median"] / match["median"]}
            )
    return out


def machine_peaks(table: list[dict]) -> dict[tuple, dict[str, float]]:
    """(machine, device, threads) -> the best measured FLOP/s (square GEMM) and bytes/s (copy)."""
    peaks: dict[tuple, dict[str, float]] = defaultdict(lambda: {"flops": 0.0, "bytes": 0.0})
    for row in table:
        key = (row["machine"], row["device"], row["threads"])
        if row["mode"] == "peak":
            peaks[key]["flops"] = max(peaks[key]["flops"], row["flops"] / row["median"])
        elif row["mode"] == "bandwidth":
            peaks[key]["bytes"] = max(peaks[key]["bytes"], row["bytes"] / row["median"])
    return dict(peaks)


def efficiency(table: list[dict]) -> list[dict[str, Any]]:
    """Achieved GFLOP/s per case and its share of the machine's measured product peak."""
    peaks = machine_peaks(table)
    out = []
    for row in table:
        if row["mode"] in ("peak", "bandwidth") or not row["flops"]:
            continue
        peak = peaks.get((row["machine"], row["device"], row["threads"]), {}).get("flops")
        achieved = row["flops"] / row["median"]
        out.append(
            {**row, "gflops": achieved / 1e9, "fraction_of_peak": achieved / peak if peak else None}
        )
    return out


def roofline(fits: list[dict], table: list[dict]) -> list[dict[str, Any]]:
    """Per recurrent step: the bound max(FLOPs / peak FLOP/s, bytes / bandwidth) against the
    fitted per-step latency b. Bandwidth is the copy probe's DRAM figure: an R that fits in
    cache (H=256 LSTM: 1 MiB) can beat it, so a ratio under 1 means the bound is loose."""
    peaks = machine_peaks(table)
    out = []
    for fit in fits:
        if fit["mode"] != "forward" or fit["cell"] == "mingru" or fit["b"] <= 0:
            continue
        peak = peaks.get((fit["machine"], device_of(fit["target"]), fit["threads"]))
        if not peak or not peak["flops"] or not peak["bytes"]:
            continue
        work = flops.step_flops(fit["cell"], fit["batch"], fit["hidden"]) * fit["layers"]
        moved = flops.step_bytes(fit["cell"], fit["batch"], fit["hidden"], fit["dtype"])
        compute_s, memory_s = work / peak["flops"], moved * fit["layers"] / peak["bytes"]
        bound = max(compute_s, memory_s)
        out.append(
            {
                **{
                    k: fit[k]
                    for k in (
                        "machine",
                        "target",
                        "cell",
                        "batch",
                        "hidden",
                        "threads",
                        "impl_class",
                    )
                },
                "step_s": fit["b"],
                "compute_bound_s": compute_s,
                "memory_bound_s": memory_s,
                "bound_s": bound,
                "times_bound": fit["b"] / bound,
                "limited_by": "memory" if memory_s >= compute_s else "compute",
            }
        )
    return out


def amdahl(cell: str, input_size: int, hidden: int, layers: int = 1) -> dict[str, float]:
    """Share of the FLOPs that can run in parallel over time (the input projection x_t @ W)
    and the bound it puts on any speed-up from parallelising over time: 1 / serial share."""
    parallel = flops.input_projection_flops(cell, 1, 1, input_size, hidden, layers)
    serial = flops.recurrent_flops(cell, 1, 1, hidden, layers)
    share = parallel / (parallel + serial)
    return {
        "parallel_share": share,
        "serial_share": 1 - share,
        "max_speedup": math.inf if serial == 0 else 1 / (1 - share),
    }


def mingru_vs_gru(table: list[dict]) -> list[dict[str, Any]]:
    """Per (machine, target, B, T): GRU, minGRU scan and minGRU step loop, side by side."""
    grid: dict[tuple, dict[str, float]] = defaultdict(dict)
    for row in table:
        if row["cell"] == "gru" and row["mode"] == "forward":
            label = "gru"
        elif row["cell"] == "mingru" and row["mode"] in ("forward", "sequential"):
            label = "mingru-scan" if row["mode"] == "forward" else "mingru-loop"
        else:
            continue
        key = (
            row["machine"],
            row["target"],
            row["batch"],
            row["hidden"],
            row["threads"],
            row["steps"],
        )
        grid[key][label] = row["median"]
    out = []
    for key, found in sorted(grid.items()):
        if "mingru-scan" in found and ("gru" in found or "mingru-loop" in found):
            machine, target, batch, hidden, threads, steps = key
            out.append(
                {
                    "machine": machine,
                    "target": target,
                    "batch": batch,
                    "hidden": hidden,
                    "threads": threads,
                    "steps": steps,
                    **found,
                }
            )
    return out


def first_win(series: list[dict], fast: str, slow: str) -> int | None:
    """The smallest T from which `fast` beats `slow` at every longer T measured."""
    points = sorted((r["steps"], r.get(fast), r.get(slow)) for r in series)
    points = [p for p in points if p[1] is not None and p[2] is not None]
    for index, (steps, _, _) in enumerate(points):
        if all(f < s for _, f, s in points[index:]):
            return steps
    return None


def crossover(table: list[dict]) -> list[dict[str, Any]]:
    """For shapes timed on both CPU and GPU: the best of each, and which wins."""
    best: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for row in table:
        if row["mode"] != "forward":
            continue
        shape = (
            row["cell"],
            row["dtype"],
            row["batch"],
            row["steps"],
            row["input_size"],
            row["hidden"],
            row["layers"],
        )
        current = best[shape].get(row["device"])
        if current is None or row["median"] < current["median"]:
            best[shape][row["device"]] = row
    out = []
    for shape, by_device in sorted(best.items()):
        if {"cpu", "gpu"} <= set(by_device):
            cpu, gpu = by_device["cpu"], by_device["gpu"]
            out.append(
                {
                    **dict(
                        zip(
                            ("cell", "dtype", "batch", "steps", "input_size", "hidden", "layers"),
                            shape,
                            strict=True,
                        )
                    ),
                    "cpu": f"{cpu['target']}@{cpu['machine']}",
                    "cpu_s": cpu["median"],
                    "gpu": f"{gpu['target']}@{gpu['machine']}",
                    "gpu_s": gpu["median"],
                    "gpu_speedup": cpu["median"] / gpu["median"],
                }
            )
    return out


def analyse(docs: list[dict[str, Any]]) -> dict[str, Any]:
    table = rows(docs)
    fits = step_fits(table)
    shapes = {
        (r["cell"], r["input_size"], r["hidden"], r["layers"])
        for r in table
        if r["mode"] == "forward"
    }
    return {
        "rows": table,
        "fits": fits,
        "batch": batch_scaling(table),
        "penalties": penalties(table),
        "peaks": {f"{m} {d} {t} threads": v for (m, d, t), v in machine_peaks(table).items()},
        "efficiency": efficiency(table),
        "roofline": roofline(fits, table),
        "amdahl": [
            {"cell": c, "input_size": i, "hidden": h, "layers": n, **amdahl(c, i, h, n)}
            for c, i, h, n in sorted(shapes)
        ],
        "mingru": mingru_vs_gru(table),
        "crossover": crossover(table),
    }
