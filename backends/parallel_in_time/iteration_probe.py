"""What one solver iteration costs here, timed on the solver itself: the prediction's probe.

`iteration_call(spec, weights, method, batch, steps, ...)` builds the iteration the runner
would run (quasi_solvers.make_solver's fused quasi-Newton iteration, or newton.iterate for
dense Newton and where no fused form applies) on one layer's recurrence at [steps, batch], ready
to be timed; `first_solve_call` a whole solve of it, through the runner, stopped after one
iteration (what a solve costs beyond its iterations). The values of the inputs do not change
an iteration's cost (denormals are flushed as the runner flushes them), so the inputs are
seeded noise, not the model's data.
`fastest_seconds` times calls round-robin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from backends.parallel_in_time.arrays import zeros
from backends.parallel_in_time.jacobians import input_projection
from backends.parallel_in_time.newton import METHODS, check_spec, iterate
from harness.model.spec import Cell, ModelSpec


def fastest_seconds(
    calls: Mapping[str, Callable[[], Any]], repeats: int, budget_s: float = float("inf")
) -> dict[str, float]:
    """Each call's fastest seconds over up to `repeats` rounds, one call of each per round in
    turn, after one warm-up call each: on a shared machine the fastest call is the one least
    disturbed, and the round-robin lets a burst of load fall on all alike. A call whose warm-up
    says its rounds would pass budget_s gets fewer (one at least)."""
    warm = {}
    for name, call in calls.items():  # warm up: first-call allocations and kernel selection
        start = time.perf_counter()
        call()
        warm[name] = time.perf_counter() - start
    rounds = {n: max(1, min(repeats, budget_s // max(w, 1e-9))) for n, w in warm.items()}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for index in range(repeats):
        for name, call in calls.items():
            if index < rounds[name]:
                start = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in samples.items()}


def layer_arrays(spec: ModelSpec, weights: Mapping[str, Any], batch: int, steps: int, xp, device):
    """(W, R, Wb, Rb, x) of layer 0, forward, as the solver's arrays in spec.dtype (x seeded
    noise, [steps, batch, input]): what the probes time an iteration on."""
    arrays = [np.asarray(weights[f"l0.{k}"][0], dtype=spec.dtype) for k in ("W", "R", "Wb", "Rb")]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, spec.input_size)).astype(spec.dtype)
    if xp.__name__ == "torch":
        return [xp.from_numpy(np.array(a, copy=True)).to(device) for a in [*arrays, x]]
    return [*arrays, x]


def _namespace(framework: str):
    if framework == "torch":
        import torch

        return torch
    if framework == "numpy":
        return np
    raise ValueError(f"framework = {framework!r}: allowed numpy, torch (on this probe)")


def iteration_call(
    spec: ModelSpec,
    weights: Mapping[str, Any],
    method: str,
    batch: int,
    steps: int,
    framework: str = "torch",
    device: str = "cpu",
    iterations: int = 1,
) -> Callable[[], None]:
    """`iterations` iterations of one (layer, direction) recurrence at [steps, batch], back to
    back as a solve runs them (its arrays warm in cache after the first), ready to call."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: allowed {', '.join(METHODS)}")
    check_spec(spec)
    xp = _namespace(framework)
    W, R, Wb, Rb, x = layer_arrays(spec, weights, batch, steps, xp, device)
    N = 2 * spec.hidden_size if spec.cell is Cell.LSTM else spec.hidden_size
    with _quiet(xp):
        xw = input_projection(spec.cell, x, W, Wb, Rb)
        s0 = zeros(xp, (batch, N), xw)
        from backends.parallel_in_time.quasi_solvers import make_solver

        solver = make_solver(spec.cell, xw, R, Rb, s0) if method == "quasi-newton" else None
        if solver is not None:
            one = solver.iteration
        else:
            S = zeros(xp, (steps, batch, N), xw)
            mode = "dense" if method == "newton" else "diagonal"

            def one():
                iterate(spec.cell, xw, R, Rb, s0, S, mode, 0.0, 1)

    def call() -> None:
        with _quiet(xp):
            for _ in range(iterations):
                one()
            _synchronize(xp, device)

    return call


def first_solve_call(
    spec: ModelSpec,
    weights: Mapping[str, Any],
    method: str,
    batch: int,
    steps: int,
    framework: str = "torch",
    device: str = "cpu",
) -> Callable[[], Any]:
    """A whole solve of layer 0's forward recurrence stopped after one iteration, as the runner
    makes it: its setup (input projection, buffers, outputs) and one iteration."""
    from backends.parallel_in_time.runner import make_runner

    one = spec.replace(num_layers=1, bidirectional=False, head=None, batch_first=False)
    layer0 = {k: np.asarray(weights[k])[:1] for k in ("l0.W", "l0.R", "l0.Wb", "l0.Rb")}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, spec.input_size)).astype(spec.dtype)
    run, _ = make_runner(one, layer0, x, method, 0.0, 1, device, framework)
    return run


def _synchronize(xp, device: str) -> None:
    if xp.__name__ == "torch" and device.startswith("cuda"):
        xp.cuda.synchronize(device)


class _quiet:
    """Autograd off and denormals flushed (torch), as the runner solves; overflow unwarned."""

    def __init__(self, xp):
        self.xp, self.flushed, self.grad = xp, False, None

    def __enter__(self):
        if self.xp.__name__ == "torch":
            self.flushed = self.xp.set_flush_denormal(True)
            self.grad = self.xp.no_grad()
            self.grad.__enter__()
        self.errstate = None
        if self.xp is np:  # torch does not warn; np.errstate costs microseconds a call
            self.errstate = np.errstate(over="ignore", invalid="ignore")
            self.errstate.__enter__()
        return self

    def __exit__(self, *exc):
        if self.errstate is not None:
            self.errstate.__exit__(*exc)
        if self.grad is not None:
            self.grad.__exit__(*exc)
        if self.flushed:
            self.xp.set_flush_denormal(False)
        return False
