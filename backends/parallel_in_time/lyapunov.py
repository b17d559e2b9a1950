"""Lyapunov exponents of a recurrence along a trajectory (Benettin's method, QR form).

A set of k orthonormal tangent vectors Q is pushed through the Jacobians, Z = J_t Q, and
re-orthonormalised, Z = Q' R'; the i-th exponent is the mean over the T steps of log |R'_ii|
(natural log, per step). With k = 1 this is the growth rate of one vector, renormalised each
step. The starting vectors are a seeded random orthonormal set; every step is averaged (no
burn-in is dropped), so the estimate carries an O(1/T) transient.

For a model: the Jacobians are those of the cell at the sequential reference's states
(numpy_ref, float64), for one layer and direction, built in chunks of steps to bound memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from backends import numpy_ref
from backends.parallel_in_time.jacobians import input_projection, step
from harness.model.spec import Cell, ModelSpec

CHUNK_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class LyapunovEstimate:
    lle: float  # the largest exponent, mean over the batch's trajectories
    per_sample: tuple[float, ...]  # the largest exponent of each trajectory
    spectrum: tuple[float, ...]  # the k largest exponents, mean over the batch
    layer: int
    direction: str
    steps: int


def lyapunov_spectrum(jacobians: Iterable[Any], num: int = 1, seed: int = 0) -> np.ndarray:
    """[B, num] exponents from Jacobian chunks [t, B, N, N] (time in order), mean log growth
    per step."""
    Q, total, steps = None, np.zeros(0), 0
    for chunk in jacobians:
        chunk = np.asarray(chunk)
        if Q is None:
            Q = _random_frame(chunk.shape[1], chunk.shape[2], num, seed)
            total = np.zeros((chunk.shape[1], num))
        for J in chunk:
            Q, growth = _push(J, Q)
            total += np.log(growth)
            steps += 1
    if Q is None:
        raise ValueError("no Jacobians: the sequence is empty")
    return total / steps


def _random_frame(B: int, N: int, num: int, seed: int) -> np.ndarray:
    if not 1 <= num <= N:
        raise ValueError(f"num = {num}: allowed 1 to the state size {N}")
    rng = np.random.default_rng(seed)
    return np.linalg.qr(rng.standard_normal((B, N, num)))[0]


def _push(J: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step: the new orthonormal frame and each direction's growth factor [B, num]."""
    Z = J @ Q
    if Q.shape[-1] == 1:
        norm = np.sqrt((Z * Z).sum(axis=(-2, -1)))[:, None]
        return Z / norm[:, :, None], norm
    Q, R = np.linalg.qr(Z)
    return Q, np.abs(np.diagonal(R, axis1=-2, axis2=-1))


def trajectory_jacobians(
    spec: ModelSpec,
    params: Mapping[str, Any],
    x,
    h0=None,
    c0=None,
    layer: int = 0,
    direction: int = 0,
) -> Iterable[np.ndarray]:
    """Dense Jacobians [t, B, N, N] along the sequential float64 trajectory, chunk by chunk,
    in the direction's processing order."""
    xw, states, R, Rb = trajectory(spec, params, x, h0, c0, layer, direction)
    T, B, N = xw.shape[0], xw.shape[1], states.shape[-1]
    chunk = max(1, CHUNK_BYTES // (8 * B * N * N))
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        yield step(spec.cell, xw[start:stop], R, Rb, states[start:stop], "dense")[1]


def trajectory(spec: ModelSpec, params: Mapping[str, Any], x, h0, c0, layer: int, direction: int):
    """(xw [T, B, G*H], states [T+1, B, N] with the initial state first, R, Rb) of one layer and
    direction along the sequential float64 run, in the direction's processing order."""
    spec64 = spec.replace(dtype="float64")
    params64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    _, tape = numpy_ref.forward_with_tape(spec64, params64, np.asarray(x, np.float64), None, h0, c0)
    layer_tape = tape.layers[layer]
    run = layer_tape.directions[direction]
    states = run.states.transpose(0, 2, 1)  # [T+1, B, H], processing order
    if spec.cell is Cell.LSTM:
        states = np.concatenate([states, run.cells.transpose(0, 2, 1)], axis=-1)
    source = layer_tape.x if direction == 0 else layer_tape.x[::-1]
    W, R, Wb, Rb = (params64[f"l{layer}.{k}"][direction] for k in ("W", "R", "Wb", "Rb"))
    return input_projection(spec.cell, source, W, Wb, Rb), states, R, Rb


def model_lyapunov(
    spec: ModelSpec,
    params: Mapping[str, Any],
    x,
    h0=None,
    c0=None,
    layer: int = 0,
    direction: int = 0,
    num: int = 1,
    seed: int = 0,
) -> LyapunovEstimate:
    """The exponents of one layer and direction (default: the first layer, forward) of a model
    on inputs x (time-major, or batch-major if spec.batch_first), at the sequential states."""
    from backends.parallel_in_time.newton import check_spec

    check_spec(spec)
    if spec.batch_first:
        x = np.asarray(x).transpose(1, 0, 2)
        spec = spec.replace(batch_first=False)
    jacobians = trajectory_jacobians(spec, params, x, h0, c0, layer, direction)
    exponents = lyapunov_spectrum(jacobians, num, seed)
    return LyapunovEstimate(
        float(exponents[:, 0].mean()),
        tuple(float(v) for v in exponents[:, 0]),
        tuple(float(v) for v in exponents.mean(axis=0)),
        layer,
        ("forward", "reverse")[direction],
        int(np.asarray(x).shape[0]),
    )
