"""CPU against GPU: for shapes timed on both, the best of each device and which wins."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.analysis.rows import SHAPE, ratio


def crossover(table: list[dict]) -> list[dict[str, Any]]:
    """Per shape timed forward on both devices: the fastest CPU and GPU rows and the GPU's
    speed-up (CPU time / GPU time, an unpaired ratio with its interval)."""
    best: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for row in table:
        if row["mode"] != "forward":
            continue
        shape = tuple(row[k] for k in SHAPE)
        current = best[shape].get(row["device"])
        if current is None or row["median"] < current["median"]:
            best[shape][row["device"]] = row
    return [
        _pair(shape, by_device["cpu"], by_device["gpu"])
        for shape, by_device in sorted(best.items())
        if {"cpu", "gpu"} <= set(by_device)
    ]


def _pair(shape: tuple, cpu: dict[str, Any], gpu: dict[str, Any]) -> dict[str, Any]:
    speedup = ratio(cpu, gpu)
    return {
        **dict(zip(SHAPE, shape, strict=True)),
        "cpu": f"{cpu['backend']}@{cpu['machine']}",
        "cpu_s": cpu["median"],
        "cpu_ci": cpu["median_ci"],
        "gpu": f"{gpu['backend']}@{gpu['machine']}",
        "gpu_s": gpu["median"],
        "gpu_ci": gpu["median_ci"],
        "gpu_speedup": speedup[0],
        "gpu_speedup_ci": speedup,
    }
