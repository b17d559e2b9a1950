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

import math
from typing import Any

from harness.machine.model import working_set_bytes
from harness.model import flops

_KEPT = ("machine", "backend", "cell", "dtype", "batch", "input_size", "hidden", "layers")
_KEPT += ("threads", "impl_class", "model")
# Elementwise FLOPs per hidden unit and batch row of one step, activations not counted:
# the adds of x.W + h.R + biases, then LSTM c = f*c + i*g, h = o*tanh(c); GRU
# h~ = tanh(xh + r*(hRh + b)), h = (1 - z)*h~ + z*h; RNN nothing more.
GATE_FLOPS = {"rnn": 2, "lstm": 4 * 2 + 4, "gru": 3 * 2 + 2 + 4}


def step_flops(fit: dict[str, Any]) -> int:
    """FLOPs of one step of every layer and direction: x.W, h.R and the gate math."""
    directions = 2 if fit.get("bidirectional") else 1
    cell, batch, hidden = fit["cell"], fit["batch"], fit["hidden"]
    products = flops.forward_flops(
        cell, batch, 1, fit["input_size"], hidden, fit["layers"], directions
    )
    return products + GATE_FLOPS[cell] * batch * hidden * fit["layers"] * directions


def roofline(fits: list[dict], machine: dict[str, Any]) -> list[dict[str, Any]]:
    """Per fitted forward series: the bound max(step FLOPs / best product, step bytes /
    bandwidth at the working set's level) against the measured per-step cost b. A bound whose
    compute peak is unknown is left out; an unknown memory level leaves the compute term."""
    out = []
    for fit in fits:
        if fit["mode"] != "forward" or fit["cell"] not in GATE_FLOPS or fit["b"] <= 0:
            continue
        where = (fit["machine"], fit["device"])
        peak = machine["peaks"].get((*where, fit["dtype"], fit["threads"]))
        memory = machine["memory"].get((*where, fit["threads"]))
        if peak is not None:
            out.append(step_bound(fit, peak, memory))
    return out


def step_bound(fit: dict[str, Any], peak, memory, peak_flops: float | None = None) -> dict:
    """The bound of one step of `fit`'s shape; peak_flops: another compute rate than the
    peak's median (an end of its interval)."""
    directions = 2 if fit.get("bidirectional") else 1
    work = step_flops(fit)
    per_layer = flops.step_bytes(fit["cell"], fit["batch"], fit["hidden"], fit["dtype"])
    moved = per_layer * fit["layers"] * directions
    working_set = working_set_bytes(fit["cell"], fit["batch"], fit["hidden"], fit["dtype"])
    level = memory.bandwidth_at(working_set) if memory else None
    compute_s = work / (peak_flops or peak.flops)
    memory_s = moved / level.bandwidth if level and level.bandwidth else None
    bound = max(compute_s, memory_s or 0.0)
    return {
        **{k: fit[k] for k in _KEPT},
        "step_s": fit["b"],
        "step_ci": fit.get("b_ci", (fit["b"], fit["b"], fit["b"])),
        "step_flops": work,
        "step_bytes": moved,
        "working_set": working_set,
        "peak": peak,
        "level": level.name if level else "unknown",
        "bandwidth": level.bandwidth if level else None,
        "memory_note": level.note if level else "no copy probe and no caches for this machine",
        "compute_bound_s": compute_s,
        "memory_bound_s": memory_s,
        "bound_s": bound,
        "times_bound": fit["b"] / bound,
        "limited_by": "memory" if memory_s and memory_s >= compute_s else "compute",
    }


def amdahl(cell: str, input_size: int, hidden: int, layers: int = 1) -> dict[str, float]:
    """Share of the FLOPs that can run in parallel over time while h @ R runs one step at a
    time (the input projection x_t @ W), and the bound that puts on such a method's speed-up:
    1 / serial share, FLOP shares taken as time shares. It is no law for the recurrence:
    Newton's method in time runs h @ R for every step at once, at a work multiplier
    (harness/sweeps/parallel_in_time_work.py, harness/analysis/parallel_in_time.py)."""
    parallel = flops.input_projection_flops(cell, 1, 1, input_size, hidden, layers)
    serial = flops.recurrent_flops(cell, 1, 1, hidden, layers)
    share = parallel / (parallel + serial)
    return {
        "parallel_share": share,
        "serial_share": 1 - share,
        "max_speedup": math.inf if serial == 0 else 1 / (1 - share),
    }
