"""How far the first iterate of a Newton or quasi-Newton solve grows, before it is run.

The solve starts from s^(0) = 0 (newton.py), so its first iteration solves the linear recurrence
s_t = J_t s_{t-1} + f_t with every J_t taken at the state before step t being 0 (the initial
state at step 0). Where those Jacobians are not saturated, their products can grow although the
model contracts on its own trajectory: a trained SimpleRNN of H = 64 (LLE -0.10) has products at
s = 0 growing e^0.31 a step, so its first float32 iterate passes float32's largest value
(e^88.7) between T = 256 and 512 and the solve ends on a non-finite value at iteration 1, where
float64 (e^709.8) converges in 13 iterations up to T = 2048.

Measured here in float64 on the layer's own input, for layer 0 forward: the log growth of one
tangent vector pushed through the dense J_t (Newton's products, by Jacobian-vector products),
and of each component through the diagonal of J_t (quasi-Newton's), each as the largest growth
over any span of steps within the first t (the scan forms the products of every span).
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
    spec: ModelSpec, params: Mapping[str, Any], x, h0=None, c0=None, seed: int = 0
) -> FirstIterateGrowth:
    """The growth of layer 0 forward's first iterate on x [T, B, N] time-major (batch-major if
    spec.batch_first), the largest over the batch's columns, in float64."""
    from backends.parallel_in_time.newton import check_spec

    check_spec(spec)
    x = np.asarray(x, np.float64)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    W, R, Wb, Rb = (np.asarray(params[f"l0.{k}"], np.float64)[0] for k in ("W", "R", "Wb", "Rb"))
    xw = input_projection(spec.cell, x, W, Wb, Rb)
    T, B, H = xw.shape[0], xw.shape[1], R.shape[1]
    N = 2 * H if spec.cell is Cell.LSTM else H
    first = np.zeros((B, N))
    if h0 is not None:
        first[:, :H] = np.asarray(h0, np.float64)[0]
    if spec.cell is Cell.LSTM and c0 is not None:
        first[:, H:] = np.asarray(c0, np.float64)[0]
    v = _random_frame(B, N, 1, seed)[..., 0]
    dense = np.zeros(B)  # log norm of the pushed vector
    diagonal = np.zeros((B, N))  # log |product of the diagonals| of each component
    low = {"dense": np.zeros(B), "diagonal": np.zeros((B, N))}  # the least of each so far
    spans = {"dense": [0.0], "diagonal": [0.0]}
    chunk = max(1, CHUNK_BYTES // (8 * B * 8 * N))
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        s_prev = np.zeros((stop - start, B, N))
        if start == 0:
            s_prev[0] = first
        derivatives = Derivatives.of(evaluate(spec.cell, xw[start:stop], R, Rb, s_prev))
        with np.errstate(divide="ignore"):  # a zero derivative: log 0 = -inf, no growth
            log_diagonal = np.log(np.abs(derivatives.diagonal(R)))
        for t in range(stop - start):
            w = derivatives.apply(t, v, R)
            norm = np.sqrt((w * w).sum(axis=-1))
            dense = dense + np.log(np.where(norm > 0, norm, np.finfo(np.float64).tiny))
            v = w / np.where(norm > 0, norm, 1.0)[:, None]
            diagonal = np.maximum(diagonal + log_diagonal[t], -1e300)
            for mode, total in (("dense", dense), ("diagonal", diagonal)):
                low[mode] = np.minimum(low[mode], total)
                spans[mode].append(max(spans[mode][-1], float((total - low[mode]).max())))
    # a product that reached 0 grows no more: its rate is held at FLOOR, not -1e300 / T
    per_step = {
        "dense": max(FLOOR, float(dense.max()) / max(1, T)),
        "diagonal": max(FLOOR, float(diagonal.max()) / max(1, T)),
    }
    return FirstIterateGrowth(T, {m: tuple(s) for m, s in spans.items()}, per_step)
