"""How many Newton iterations rounding alone costs, measured from the answer itself.

A solve in float32 converges to within its own rounding of the sequential states, then each
further iteration changes them by that rounding, amplified by the scan's Jacobian products. Where
that change passes tol at some step, the change between iterates cannot settle under tol by
contraction; it settles only as bitwise-fixed states spread from t = 0, about one step an
iteration. So this starts Newton at the sequential states, in the model's dtype (layer 0,
forward), and counts the iterations until the change is <= tol: 1 where the rounding floor lies
under tol; nearly T where it does not (measured on a trained SimpleRNN, H = 64, LLE -0.11, and
random RNN / GRU / LSTM of gain near LLE = 0, T = 64 and 256, by hand: the count from the
sequential states, or float64's count where larger, within 1.9x of a float32 solve from zero in
24 stalled or borderline cases).

The change at step t depends on the steps up to t only, so x's prefixes share one sequential
pass. A run stops early at `deadline` (time.perf_counter()), with the iterations it ran.

In the solve's own framework: the floor is its kernels' rounding. On the trained SimpleRNN at
T = 64 (one input), NumPy's floor run took 22 iterations (5-38 from ten starts perturbed by 1e-6
relative) and its solve 14, where torch's floor run took 57 (52-58) and torch's solve 57.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backends.parallel_in_time.arrays import namespace, zeros
from backends.parallel_in_time.iteration_probe import _namespace, _quiet
from backends.parallel_in_time.jacobians import evaluate, input_projection
from backends.parallel_in_time.newton import DEADLINE, DENSE_LIMIT_BYTES, check_spec, iterate
from harness.model.spec import Cell, ModelSpec


@dataclasses.dataclass(frozen=True)
class FloorRun:
    """Newton from the sequential states at T = steps."""

    steps: int
    iterations: int | None  # the change first <= tol after these; None: not within `run`
    run: int  # iterations run
    first_change: float  # max |change| of the first iteration: the rounding floor's size
    stopped: str = "converged"  # converged, deadline, non-finite or T + 1: why the run ended


def floor_runs(
    spec: ModelSpec,
    params: Mapping[str, Any],
    x,
    lengths: Sequence[int],
    tol: float,
    deadline: float,
    framework: str = "numpy",
    device: str = "cpu",
    mode: str = "dense",
    least: int = 1,
) -> list[FloorRun]:
    """A run at each of `lengths` (each <= x's T, shortest first) on x's prefix (NumPy,
    time-major [T, B, I]), in spec.dtype on the framework's arrays, until the deadline. The
    sequential states are extended length by length; a length is not started where the
    deadline would cut it before `least` iterations at the last run's cost a step (the caller's
    shortest run that says anything), nor where its dense Jacobians would pass what a solve
    holds."""
    check_spec(spec)
    xp = _namespace(framework)

    def array(a):
        a = np.array(a, dtype=spec.dtype, order="C")  # a copy: torch writes none it reads
        return xp.from_numpy(a).to(device) if xp.__name__ == "torch" else a

    W, R, Wb, Rb = (array(np.asarray(params[f"l0.{k}"])[0]) for k in ("W", "R", "Wb", "Rb"))
    runs: list[FloorRun] = []
    itemsize = np.dtype(spec.dtype).itemsize
    with _quiet(xp):
        xw = input_projection(spec.cell, array(x), W, Wb, Rb)
        N = 2 * spec.hidden_size if spec.cell is Cell.LSTM else spec.hidden_size
        s0 = zeros(xp, (x.shape[1], N), xw)
        states = zeros(xp, (xw.shape[0], *s0.shape), xw)
        done, per_step = 0, 0.0  # states made; seconds an iteration a step, at the last run
        for T in sorted(set(lengths)):
            if xw.shape[0] < T or T < 1:
                continue
            if mode == "dense" and 3 * T * x.shape[1] * N * N * itemsize > DENSE_LIMIT_BYTES:
                break  # the dense Jacobians a solve would refuse to hold
            if time.perf_counter() + least * per_step * T >= deadline:
                break
            done = _sequential(spec.cell, xw, R, Rb, s0, states, done, T, deadline)
            if done < T:
                break
            begun = time.perf_counter()
            run = _run(spec.cell, xw[:T], R, Rb, s0, states[:T], mode, tol, deadline)
            per_step = (time.perf_counter() - begun) / (run.run * T)
            runs.append(run)
    return runs


def _sequential(cell: Cell, xw, R, Rb, s0, states, done: int, until: int, deadline: float):
    """states[done:until] one step at a time, as far as the deadline allows: the steps made."""
    s = s0 if done == 0 else states[done - 1]
    for t in range(done, until):
        if t % 64 == 0 and time.perf_counter() >= deadline:
            return t
        s = evaluate(cell, xw[t : t + 1], R, Rb, s[None]).s[0]
        states[t] = s
    return until


def _run(cell: Cell, xw, R, Rb, s0, S, mode: str, tol: float, deadline: float) -> FloorRun:
    T = xw.shape[0]
    S = S.clone() if namespace(xw).__name__ == "torch" else S.copy()
    _, (converged, k, residuals, reason) = iterate(
        cell, xw, R, Rb, s0, S, mode, tol, T + 1, deadline
    )
    first = residuals[0]
    if converged:
        return FloorRun(T, k, k, first, "converged")
    if residuals[-1] != residuals[-1]:
        return FloorRun(T, None, len(residuals), first, "non-finite")
    stopped = "deadline" if reason.startswith(DEADLINE) else "T + 1"
    return FloorRun(T, None, len(residuals), first, stopped)
