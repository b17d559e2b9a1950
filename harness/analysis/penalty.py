"""The recurrence penalty (RNN time / the time of its FLOPs as one product, same library) and
the share of the machine's measured matrix-product peak each case reaches."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.analysis.table import key, ratio

# The library whose one-product time an RNN target is measured against.
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


def penalties(table: list[dict]) -> list[dict[str, Any]]:
    """RNN time / time of its FLOPs as one product per layer, same library, threads, device,
    machine and run: the price of doing the work one step at a time. The two were timed in one
    interleaved group, so the penalty is the median of the per-round ratios, with its interval."""
    gemm = {
        key(r, "target", "mode") + (("target", r["target"]),): r
        for r in table
        if r["mode"] == "gemm"
    }
    out = []
    for row in table:
        if row["mode"] != "forward" or row["target"] not in GEMM_TARGET:
            continue
        match = gemm.get(key(row, "target", "mode") + (("target", GEMM_TARGET[row["target"]]),))
        if match:
            interval = ratio(row, match)
            out.append(
                {
                    **row,
                    "gemm_median": match["median"],
                    "gemm_median_ci": match["median_ci"],
                    "penalty": interval[0],
                    "penalty_ci": interval,
                }
            )
    return out


def machine_peaks(table: list[dict]) -> dict[tuple, dict[str, float]]:
    """(machine, device, threads) -> the best measured FLOP/s (square GEMM) and bytes/s (copy)."""
    peaks: dict[tuple, dict[str, float]] = defaultdict(lambda: {"flops": 0.0, "bytes": 0.0})
    for row in table:
        where = (row["machine"], row["device"], row["threads"])
        if row["mode"] == "peak":
            peaks[where]["flops"] = max(peaks[where]["flops"], row["flops"] / row["median"])
        elif row["mode"] == "bandwidth":
            peaks[where]["bytes"] = max(peaks[where]["bytes"], row["bytes"] / row["median"])
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
