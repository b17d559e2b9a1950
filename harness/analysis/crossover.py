"""CPU against GPU: for shapes timed on both, the best of each device and which wins."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence

from harness.analysis.rows import TimedRow, ratio
from harness.stats import Interval


@dataclasses.dataclass(frozen=True)
class Crossover:
    """One shape's fastest CPU and GPU rows ("backend@machine") and the GPU's speed-up."""

    cell: str
    dtype: str
    batch: int
    steps: int
    input_size: int
    hidden: int
    layers: int
    cpu: str
    cpu_s: float
    cpu_ci: Interval
    gpu: str
    gpu_s: float
    gpu_ci: Interval
    gpu_speedup: float
    gpu_speedup_ci: Interval


def crossover(table: Sequence[TimedRow]) -> list[Crossover]:
    """Per shape timed forward on both devices: the fastest CPU and GPU rows and the GPU's
    speed-up (CPU time / GPU time, an unpaired ratio with its interval)."""
    best: dict[tuple[object, ...], dict[str, TimedRow]] = defaultdict(dict)
    for row in table:
        if row.mode != "forward" or row.device is None:
            continue
        shape = (row.cell, row.dtype, row.batch, row.steps, row.input_size, row.hidden, row.layers)
        current = best[shape].get(row.device)
        if current is None or row.median < current.median:
            best[shape][row.device] = row
    return [
        _pair(by_device["cpu"], by_device["gpu"])
        for _, by_device in sorted(best.items(), key=lambda item: item[0])
        if {"cpu", "gpu"} <= set(by_device)
    ]


def _pair(cpu: TimedRow, gpu: TimedRow) -> Crossover:
    speedup = ratio(cpu, gpu)
    return Crossover(
        cpu.cell,
        cpu.dtype,
        cpu.batch,
        cpu.steps,
        cpu.input_size,
        cpu.hidden,
        cpu.layers,
        f"{cpu.backend}@{cpu.machine}",
        cpu.median,
        cpu.median_ci,
        f"{gpu.backend}@{gpu.machine}",
        gpu.median,
        gpu.median_ci,
        speedup[0],
        speedup,
    )
