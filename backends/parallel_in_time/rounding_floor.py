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

from backends.parallel_in_time.arrays import max_abs, namespace, zeros
from backends.parallel_in_time.iteration_probe import _namespace, _quiet
from backends.parallel_in_time.jacobians import evaluate, input_projection, step
from backends.parallel_in_time.newton import DENSE_LIMIT_BYTES
from backends.parallel_in_time.scan import apply_linear, linear_scan
from harness.model.spec import Cell, ModelSpec


@dataclasses.dataclass(frozen=True)
class FloorRun:
    """Newton from the sequential states at T = steps."""

    steps: int
    iterations: int | None  # the change first <= tol after these; None: not within `run`
    run: int  # iterations run (cut by the deadline, or T + 1)
    first_change: float  # max |change| of the first iteration: the rounding floor's size


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
) -> list[FloorRun]:
    """A run at each of `lengths` (ascending, each <= x's T) on x's prefix (NumPy, time-major
    [T, B, I]), in spec.dtype on the framework's arrays, until the deadline; a length is started
    only before it."""
    xp = _namespace(framework)

    def array(a):
        a = np.array(a, dtype=spec.dtype, order="C")  # a copy: torch writes none it reads
        return xp.from_numpy(a).to(device) if xp.__name__ == "torch" else a

    W, R, Wb, Rb = (array(np.asarray(params[f"l0.{k}"])[0]) for k in ("W", "R", "Wb", "Rb"))
    runs = []
    with _quiet(xp):
        xw = input_projection(spec.cell, array(x), W, Wb, Rb)
        N = 2 * spec.hidden_size if spec.cell is Cell.LSTM else spec.hidden_size
        s0 = zeros(xp, (x.shape[1], N), xw)
        states = _sequential(spec.cell, xw, R, Rb, s0, deadline)
        itemsize = np.dtype(spec.dtype).itemsize
        for T in lengths:
            if time.perf_counter() >= deadline or states.shape[0] < T:
                break
            if mode == "dense" and 3 * T * x.shape[1] * N * N * itemsize > DENSE_LIMIT_BYTES:
                break  # the dense Jacobians a solve would refuse to hold
            runs.append(_run(spec.cell, xw[:T], R, Rb, s0, states[:T], mode, tol, deadline))
    return runs


def _sequential(cell: Cell, xw, R, Rb, s0, deadline: float):
    """The states one step at a time, as many as the deadline allows."""
    states = zeros(namespace(xw), (xw.shape[0], *s0.shape), xw)
    s = s0
    for t in range(xw.shape[0]):
        if t % 64 == 0 and time.perf_counter() >= deadline:
            return states[:t]
        s = evaluate(cell, xw[t : t + 1], R, Rb, s[None]).s[0]
        states[t] = s
    return states


def _run(cell: Cell, xw, R, Rb, s0, S, mode: str, tol: float, deadline: float) -> FloorRun:
    xp, dense, T = namespace(xw), mode == "dense", xw.shape[0]
    S, first = S.clone() if xp.__name__ == "torch" else S.copy(), float("nan")
    for k in range(1, T + 2):
        previous = xp.concatenate([s0[None], S[:-1]])
        f, J = step(cell, xw, R, Rb, previous, mode)
        b = f - apply_linear(J, previous, dense)
        b[0] = f[0]
        S_next = linear_scan(J, b, dense)
        change = max_abs(S_next - S)
        S = S_next
        first = change if k == 1 else first
        if change <= tol:
            return FloorRun(T, k, k, first)
        if change != change or time.perf_counter() >= deadline:
            return FloorRun(T, None, k, first)
    return FloorRun(T, None, T + 1, first)
