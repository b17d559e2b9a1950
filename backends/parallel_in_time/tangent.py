"""The largest Lyapunov exponent by pushing one tangent vector through Jacobian-vector products:
the same estimate as lyapunov.model_lyapunov with num = 1 (the same seeded start, the same
renormalisation every step, the same float64 trajectory), without forming a Jacobian.

model_lyapunov builds every J_t as a dense [N, N] matrix (G scaled copies of R a step): at
H = 256 that is seconds per thousand steps. Every Jacobian term is diag(coefficient) times a
block of R, or a diagonal (jacobians.py), so J_t v needs one product R v and a few elementwise
passes: the cost of one sequential step. The coefficients are computed for a chunk of steps at
once; only the product and the combination run step by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.parallel_in_time.jacobians import sigmoid
from backends.parallel_in_time.lyapunov import LyapunovEstimate, _random_frame, trajectory
from harness.model.spec import Cell, ModelSpec

CHUNK_BYTES = 64 << 20


def largest_lyapunov(
    spec: ModelSpec,
    params: Mapping[str, Any],
    x,
    h0=None,
    c0=None,
    layer: int = 0,
    direction: int = 0,
    seed: int = 0,
) -> LyapunovEstimate:
    """model_lyapunov(..., num=1) by Jacobian-vector products; x time-major (or batch-major if
    spec.batch_first)."""
    from backends.parallel_in_time.newton import check_spec

    check_spec(spec)
    if spec.batch_first:
        x = np.asarray(x).transpose(1, 0, 2)
        spec = spec.replace(batch_first=False)
    xw, states, R, Rb = trajectory(spec, params, x, h0, c0, layer, direction)
    T, B, N = xw.shape[0], xw.shape[1], states.shape[-1]
    v = _random_frame(B, N, 1, seed)[..., 0]  # [B, N], unit rows
    total = np.zeros(B)
    chunk = max(1, CHUNK_BYTES // (8 * B * 8 * N))
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        apply = _COEFFICIENTS[spec.cell](xw[start:stop], R, Rb, states[start:stop])
        for t in range(stop - start):
            w = apply(t, v)
            norm = np.sqrt((w * w).sum(axis=-1))
            total += np.log(norm)
            v = w / norm[:, None]
    exponents = total / T
    return LyapunovEstimate(
        float(exponents.mean()),
        tuple(float(e) for e in exponents),
        (float(exponents.mean()),),
        layer,
        ("forward", "reverse")[direction],
        T,
    )


# Each cell: from a chunk's inputs and previous states, the coefficients of J_t's terms, and a
# function (t, v [B, N]) -> J_t v. Gate blocks of R in the canonical order (jacobians.py).


def _rnn(xw, R, Rb, s_prev):
    h = np.tanh(xw + s_prev @ R.T)
    scale = 1 - h * h

    def apply(t, v):
        return scale[t] * (v @ R.T)

    return apply


def _gru(xw, R, Rb, s_prev):
    H = R.shape[1]
    recurrent = s_prev @ R.T
    z = sigmoid(xw[..., :H] + recurrent[..., :H], np)
    r = sigmoid(xw[..., H : 2 * H] + recurrent[..., H : 2 * H], np)
    recurrent_h = recurrent[..., 2 * H :] + Rb[2 * H :]
    n = np.tanh(xw[..., 2 * H :] + r * recurrent_h)
    dn = (1 - z) * (1 - n * n)
    # J = diag(z) + diag(c_z) R_z + diag(c_r) R_r + diag(c_h) R_h
    c = np.stack([(s_prev - n) * z * (1 - z), dn * recurrent_h * r * (1 - r), dn * r], axis=-2)

    def apply(t, v):
        Rv = (v @ R.T).reshape(v.shape[0], 3, H)
        return z[t] * v + (c[t] * Rv).sum(axis=-2)

    return apply


def _lstm(xw, R, Rb, s_prev):
    H = R.shape[1]
    h_prev, c_prev = s_prev[..., :H], s_prev[..., H:]
    a = xw + h_prev @ R.T
    i, o, f = (sigmoid(a[..., k * H : (k + 1) * H], np) for k in range(3))
    g = np.tanh(a[..., 3 * H :])
    tanh_c = np.tanh(f * c_prev + i * g)
    dh_dc = o * (1 - tanh_c * tanh_c)
    # d c / d h_prev = diag(c_i) R_i + diag(c_f) R_f + diag(c_g) R_g; d h / d h_prev adds
    # diag(c_o) R_o and scales d c / d h_prev by dh_dc; d c / d c_prev = diag(f)
    c_i, c_o = g * i * (1 - i), tanh_c * o * (1 - o)
    c_f, c_g = c_prev * f * (1 - f), i * (1 - g * g)

    def apply(t, v):
        vh, vc = v[:, :H], v[:, H:]
        Rv = vh @ R.T
        dc = c_i[t] * Rv[:, :H] + c_f[t] * Rv[:, 2 * H : 3 * H] + c_g[t] * Rv[:, 3 * H :]
        dc_total = dc + f[t] * vc
        dh = c_o[t] * Rv[:, H : 2 * H] + dh_dc[t] * dc_total
        return np.concatenate([dh, dc_total], axis=-1)

    return apply


_COEFFICIENTS = {Cell.RNN: _rnn, Cell.GRU: _gru, Cell.LSTM: _lstm}
