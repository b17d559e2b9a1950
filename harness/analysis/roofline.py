"""Bounds: the per-step roofline against the fitted cost of a step, and the Amdahl bound of
parallelising over time.

The slope b of latency = a + b*T is everything one more step costs: its input projection x.W
(done per step or as one product up front, it grows with T all the same), h.R and the gate
math. So the step's FLOPs are all of those, against the best product measured on the machine
(harness.machine.model). Its bytes are R, the step's input gates and the states, read at the
memory level where the step's working set (R and the states of one layer) fits, at the copy
bandwidth measured there. W is left out of the working set and of the bytes (it may be read
once per call): leaving work out only lowers a bound, so the bound still bounds."""

from __future__ import annotations

import dataclasses
import math

from harness.analysis.fits import Fit, Shape
from harness.machine.model import Level, MachineModel, Memory, Peak, working_set_bytes
from harness.model import flops
from harness.stats import Interval

# Elementwise FLOPs per hidden unit and batch row of one step, activations not counted:
# the adds of x.W + h.R + biases, then LSTM c = f*c + i*g, h = o*tanh(c); GRU
# h~ = tanh(xh + r*(hRh + b)), h = (1 - z)*h~ + z*h; RNN nothing more.
GATE_FLOPS = {"rnn": 2, "lstm": 4 * 2 + 4, "gru": 3 * 2 + 2 + 4}


@dataclasses.dataclass(frozen=True)
class StepBound:
    """The bound of one step: every FLOP of it at the best product, its bytes at the copy
    bandwidth of the level its working set lives in (memory_bound_s None: unknown)."""

    step_flops: int
    step_bytes: int
    working_set: int
    place: Level | None  # None: no copy probe and no caches for this machine
    compute_bound_s: float
    memory_bound_s: float | None

    @property
    def level(self) -> str:
        return self.place.name if self.place else "unknown"

    @property
    def bandwidth(self) -> float | None:
        return self.place.bandwidth if self.place else None

    @property
    def memory_note(self) -> str:
        return self.place.note if self.place else "no copy probe and no caches for this machine"

    @property
    def bound_s(self) -> float:
        return max(self.compute_bound_s, self.memory_bound_s or 0.0)

    @property
    def limited_by(self) -> str:
        memory = self.memory_bound_s
        return "memory" if memory and memory >= self.compute_bound_s else "compute"


@dataclasses.dataclass(frozen=True)
class RooflineRow:
    """A fitted forward series (its machine, backend, cell, shape: fit.machine, ...) whose
    measured step, the slope b, is held against its bound."""

    fit: Fit
    peak: Peak
    bound: StepBound

    @property
    def step_s(self) -> float:
        return self.fit.b

    @property
    def step_ci(self) -> Interval:
        return self.fit.b_ci

    @property
    def times_bound(self) -> float:
        return self.fit.b / self.bound.bound_s


def step_flops(shape: Shape, batch: int) -> int:
    """FLOPs of one step of every layer and direction: x.W, h.R and the gate math."""
    directions = 2 if shape.bidirectional else 1
    cell, hidden = shape.cell, shape.hidden
    products = flops.forward_flops(
        cell, batch, 1, shape.input_size, hidden, shape.layers, directions
    )
    return products + GATE_FLOPS[cell] * batch * hidden * shape.layers * directions


def roofline(fits: list[Fit], machine: MachineModel) -> list[RooflineRow]:
    """Per fitted forward series: the bound max(step FLOPs / best product, step bytes /
    bandwidth at the working set's level) against the measured per-step cost b. A bound whose
    compute peak is unknown is left out; an unknown memory level leaves the compute term."""
    out = []
    for fit in fits:
        if fit.mode != "forward" or fit.cell not in GATE_FLOPS or fit.b <= 0:
            continue
        device = fit.device or ""
        peak = machine.peaks.get((fit.machine, device, fit.dtype, fit.threads))
        memory = machine.memory.get((fit.machine, device, fit.threads))
        if peak is not None:
            out.append(RooflineRow(fit, peak, step_bound(fit, fit.batch, peak, memory)))
    return out


def step_bound(
    shape: Shape,
    batch: int,
    peak: Peak,
    memory: Memory | None,
    peak_flops: float | None = None,
) -> StepBound:
    """The bound of one step of `shape` at `batch`; peak_flops: another compute rate than the
    peak's median (an end of its interval)."""
    directions = 2 if shape.bidirectional else 1
    work = step_flops(shape, batch)
    per_layer = flops.step_bytes(shape.cell, batch, shape.hidden, shape.dtype)
    moved = per_layer * shape.layers * directions
    working_set = working_set_bytes(shape.cell, batch, shape.hidden, shape.dtype)
    level = memory.bandwidth_at(working_set) if memory else None
    compute_s = work / (peak_flops or peak.flops)
    memory_s = moved / level.bandwidth if level and level.bandwidth else None
    return StepBound(work, moved, working_set, level, compute_s, memory_s)


@dataclasses.dataclass(frozen=True)
class Amdahl:
    """What parallelising over time can buy a shape while h @ R runs step by step."""

    cell: str
    input_size: int
    hidden: int
    layers: int
    parallel_share: float
    serial_share: float
    max_speedup: float


def amdahl(cell: str, input_size: int, hidden: int, layers: int = 1) -> Amdahl:
    """Share of the FLOPs that can run in parallel over time while h @ R runs one step at a
    time (the input projection x_t @ W), and the bound that puts on such a method's speed-up:
    1 / serial share, FLOP shares taken as time shares. It is no law for the recurrence:
    Newton's method in time runs h @ R for every step at once, at a work multiplier
    (harness/sweeps/parallel_in_time_work.py, harness/analysis/parallel_in_time.py)."""
    parallel = flops.input_projection_flops(cell, 1, 1, input_size, hidden, layers)
    serial = flops.recurrent_flops(cell, 1, 1, hidden, layers)
    share = parallel / (parallel + serial)
    speedup = math.inf if serial == 0 else 1 / (1 - share)
    return Amdahl(cell, input_size, hidden, layers, share, 1 - share, speedup)
