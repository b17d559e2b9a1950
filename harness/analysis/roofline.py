"""Bounds: the per-step roofline (measured FLOP/s and copy bandwidth) against the fitted cost of
a step, and the Amdahl bound of parallelising over time."""

from __future__ import annotations

import math
from typing import Any

from harness.analysis.penalty import machine_peaks
from harness.analysis.table import device_of
from harness.bench import flops

_KEPT = ("machine", "target", "cell", "batch", "hidden", "threads", "impl_class")


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
        if peak and peak["flops"] and peak["bytes"]:
            out.append(_step_bound(fit, peak))
    return out


def _step_bound(fit: dict[str, Any], peak: dict[str, float]) -> dict[str, Any]:
    work = flops.step_flops(fit["cell"], fit["batch"], fit["hidden"]) * fit["layers"]
    moved = flops.step_bytes(fit["cell"], fit["batch"], fit["hidden"], fit["dtype"])
    compute_s, memory_s = work / peak["flops"], moved * fit["layers"] / peak["bytes"]
    bound = max(compute_s, memory_s)
    return {
        **{k: fit[k] for k in _KEPT},
        "step_s": fit["b"],
        "compute_bound_s": compute_s,
        "memory_bound_s": memory_s,
        "bound_s": bound,
        "times_bound": fit["b"] / bound,
        "limited_by": "memory" if memory_s >= compute_s else "compute",
    }


def amdahl(cell: str, input_size: int, hidden: int, layers: int = 1) -> dict[str, float]:
    """Share of the FLOPs that can run in parallel over time while h @ R runs one step at a
    time (the input projection x_t @ W), and the bound that puts on such a method's speed-up:
    1 / serial share, FLOP shares taken as time shares. It is no law for the recurrence:
    Newton's method in time runs h @ R for every step at once, at a work multiplier
    (harness/bench/pit_work.py, harness/analysis/parallel_time.py)."""
    parallel = flops.input_projection_flops(cell, 1, 1, input_size, hidden, layers)
    serial = flops.recurrent_flops(cell, 1, 1, hidden, layers)
    share = parallel / (parallel + serial)
    return {
        "parallel_share": share,
        "serial_share": 1 - share,
        "max_speedup": math.inf if serial == 0 else 1 / (1 - share),
    }
