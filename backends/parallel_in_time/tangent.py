"""The largest Lyapunov exponent by pushing one tangent vector through Jacobian-vector products:
the same estimate as lyapunov.model_lyapunov with num = 1 (the same seeded start, the same
renormalisation every step, the same float64 trajectory), without forming a Jacobian.

model_lyapunov builds every J_t as a dense [N, N] matrix (G scaled copies of R a step): at
H = 256 that is seconds per thousand steps. Every Jacobian term is diag(coefficient) times a
block of R, or a diagonal (jacobians.Derivatives), so J_t v needs one product R v and a few
elementwise passes: the cost of one sequential step. The coefficients are computed for a chunk
of steps at once; only the product and the combination run step by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.parallel_in_time.jacobians import Derivatives, evaluate
from backends.parallel_in_time.lyapunov import LyapunovEstimate, _random_frame, trajectory
from harness.model.spec import ModelSpec

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
        chunk_steps = evaluate(spec.cell, xw[start:stop], R, Rb, states[start:stop])
        derivatives = Derivatives.of(chunk_steps)
        for t in range(stop - start):
            w = derivatives.apply(t, v, R)
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
