"""How far the first iterate of a Newton or quasi-Newton solve grows, before it is run.

The solve starts from s^(0) = 0 (newton.py), so its first iteration solves the linear recurrence
s_t = J_t s_{t-1} + f_t with every J_t taken at the state before step t being 0 (the initial
state at step 0). Where those Jacobians are not saturated, their products can grow although the
model contracts on its own trajectory: a trained SimpleRNN of H = 64 (LLE -0.10) has products at
s = 0 growing e^0.31 a step, so its first float32 iterate passes float32's largest value
(e^88.7) between T = 256 and 384 and the solve ends on a non-finite value at iteration 1, where
float64 (e^709.8) converges in 13-14 iterations up to T = 2048.

Measured here in float64 on the layer's own input, for layer 0 forward: the log growth of one
tangent vector pushed through the dense J_t (Newton's products, by Jacobian-vector products),
and of each component through the diagonal of J_t (quasi-Newton's), each as the largest growth
over any span of steps within the first t (the scan forms the products of every span); a span
ends where its product shrinks below 1 or is 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.parallel_in_time.jacobians import Derivatives, evaluate, input_projection
from backends.parallel_in_time.lyapunov import _random_frame
from harness.model.spec import Cell, ModelSpec

CHUNK_BYTES = 64 << 20
FLOOR = -1e3  # log growth a step
LOG_TINY = math.log(np.finfo(np.float64).tiny)  # a factor of 0 in the mean rate


@dataclasses.dataclass(frozen=True)
class FirstIterateGrowth:
    """Per mode ("dense", "diagonal"): the largest log growth over any span within the first t
    steps, for t = 0 .. steps (spans[mode][t]), and the mean log growth a step over them."""

    steps: int
    spans: Mapping[str, tuple[float, ...]]
    per_step: Mapping[str, float]

    def log_growth(self, mode: str, steps: int) -> float:
        """The largest span's log growth within T = steps: measured up to the input's length,
        on at the mean rate a step past it (never below what was measured)."""
        spans = self.spans[mode]
        if steps <= self.steps:
            return spans[steps]
        return spans[-1] + max(0.0, self.per_step[mode]) * (steps - self.steps)

    @staticmethod
    def log_limit(dtype) -> float:
        """The log of the dtype's largest finite value."""
        return math.log(float(np.finfo(np.dtype(dtype)).max))


def first_iterate_growth(
    spec: ModelSpec, params: Mapping[str, Any], x, seed: int = 0
) -> FirstIterateGrowth:
    """The growth of layer 0 forward's first iterate on x [T, B, N] time-major (batch-major if
    spec.batch_first), the largest over the batch's columns, in float64. The scan never applies
    step 0's Jacobian (s_0 = f_0 exactly): the products are of J_1 .. J_{T-1}, each at 0."""
    from backends.parallel_in_time.newton import check_spec

    check_spec(spec)
    x = np.asarray(x, np.float64)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    W, R, Wb, Rb = (np.asarray(params[f"l0.{k}"], np.float64)[0] for k in ("W", "R", "Wb", "Rb"))
    xw = input_projection(spec.cell, x, W, Wb, Rb)
    T, B, H = xw.shape[0], xw.shape[1], R.shape[1]
    N = 2 * H if spec.cell is Cell.LSTM else H
    rng = np.random.default_rng(seed)
    v = _random_frame(B, N, 1, seed)[..., 0]
    # the largest span ending at the current step (Kadane: a span that shrinks is dropped), per
    # column for the pushed vector and per component for the diagonal, and the sum of the logs
    # (each held at LOG_TINY: a zero factor ends a span, the rate stays a number)
    ending = {"dense": np.zeros(B), "diagonal": np.zeros((B, N))}
    total = {"dense": np.zeros(B), "diagonal": np.zeros((B, N))}
    spans = {"dense": [0.0, 0.0], "diagonal": [0.0, 0.0]}  # within 0 steps and within 1
    chunk = max(1, CHUNK_BYTES // (8 * B * 8 * N))
    for start in range(1, T, chunk):
        stop = min(T, start + chunk)
        s_prev = np.zeros((stop - start, B, N))
        derivatives = Derivatives.of(evaluate(spec.cell, xw[start:stop], R, Rb, s_prev))
        with np.errstate(divide="ignore"):  # a zero derivative: log 0 = -inf, a span's end
            log_diagonal = np.log(np.abs(derivatives.diagonal(R)))
        for t in range(stop - start):
            w = derivatives.apply(t, v, R)
            norm = np.sqrt((w * w).sum(axis=-1))
            dead = norm == 0
            with np.errstate(divide="ignore"):
                steps = {"dense": np.log(norm), "diagonal": log_diagonal[t]}
            v = w / np.where(dead, 1.0, norm)[:, None]
            if dead.any():  # this vector's product is 0 from here: push a fresh one on
                v[dead] = _random_frame(int(dead.sum()), N, 1, int(rng.integers(2**31)))[..., 0]
            for mode, step in steps.items():
                ending[mode] = np.maximum(ending[mode] + step, 0.0)
                total[mode] += np.maximum(step, LOG_TINY)
                spans[mode].append(max(spans[mode][-1], float(ending[mode].max())))
    per_step = {m: max(FLOOR, float(total[m].max()) / max(1, T - 1)) for m in total}
    return FirstIterateGrowth(T, {m: tuple(s[: T + 1]) for m, s in spans.items()}, per_step)
