"""Gradients through the converged solution: the adjoint recurrence
lam_t = g_t + J_{t+1}^T lam_{t+1} (g_t: the loss's direct gradient of s_t) solved by one reverse
linear scan with transposed dense Jacobians, then every step's local gradient at once.

NumPy or CuPy arrays (the reverse scan uses negative-step views). The result is keyed like
numpy_ref.backward: every canonical weight, "x", "h0" and (LSTM) "c0".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.parallel_in_time.arrays import namespace
from backends.parallel_in_time.jacobians import input_projection, sigmoid, step
from backends.parallel_in_time.newton import in_time_order, initial_states, solve_layers, time_major
from backends.parallel_in_time.scan import reverse_scan_transposed
from harness.model.arrays import Arrays
from harness.model.spec import Cell, ModelSpec


def model_gradients(
    spec: ModelSpec,
    params: Mapping[str, Any],
    x,
    dy=None,
    dh_n=None,
    dc_n=None,
    h0=None,
    c0=None,
    method: str = "newton",
    tol: float = 1e-12,
    max_iter: int = 100,
) -> Arrays:
    """Solve the model in parallel over time, then backpropagate the given output gradients."""
    xp, H, D = namespace(x), spec.hidden_size, spec.num_directions
    x = time_major(spec, x)
    s0 = initial_states(spec, x, h0, c0)
    layers, solves = solve_layers(spec, params, x, s0, method, tol, max_iter)
    failed = [s for s in solves if not s.converged]
    if failed:
        raise ValueError(
            f"no gradients: layer {failed[0].layer} {failed[0].direction} "
            f"did not converge ({failed[0].reason})"
        )
    T, B = x.shape[:2]
    d_out = xp.zeros((T, B, D * H), dtype=x.dtype) if dy is None else time_major(spec, dy)
    final = xp.zeros((len(s0), B, s0.shape[-1]), dtype=x.dtype)
    if dh_n is not None:
        final[..., :H] += dh_n
    if dc_n is not None:
        final[..., H:] += dc_n
    grads: Arrays = {}
    ds0 = xp.zeros_like(s0)
    for layer in reversed(range(spec.num_layers)):
        layer_input, states = layers[layer]
        d_input = xp.zeros_like(layer_input)
        for d, S in enumerate(states):
            g = xp.zeros_like(S)
            g[..., :H] = in_time_order(d_out[..., d * H : (d + 1) * H], d)
            g[-1] += final[layer * D + d]
            part, dsource, ds0[layer * D + d] = direction_gradients(
                spec.cell,
                in_time_order(layer_input, d),
                params,
                layer,
                d,
                S,
                s0[layer * D + d],
                g,
            )
            d_input += in_time_order(dsource, d)
            for name, value in part.items():
                grads.setdefault(f"l{layer}.{name}", []).append(value)
        d_out = d_input
    grads = {name: xp.stack(values) for name, values in grads.items()}
    grads["x"] = time_major(spec, d_out)
    grads["h0"] = ds0[..., :H]
    if spec.cell is Cell.LSTM:
        grads["c0"] = ds0[..., H:]
    return grads


def direction_gradients(cell: Cell, source, params, layer: int, d: int, S, s0, g):
    """One layer and direction in processing order: (weight gradients, d source, d s0)."""
    xp = namespace(S)
    W, R, Wb, Rb = (params[f"l{layer}.{k}"][d] for k in ("W", "R", "Wb", "Rb"))
    previous = xp.concatenate([s0[None], S[:-1]])
    xw = input_projection(cell, source, W, Wb, Rb)
    _, J = step(cell, xw, R, Rb, previous, "dense")
    lam = reverse_scan_transposed(J, g, dense=True)
    d_in, d_rec = _preactivation_gradients(cell, xw, R, Rb, previous, lam)
    h_prev = previous[..., : R.shape[1]]
    sums = ([0, 1], [0, 1])
    weights = {
        "W": xp.tensordot(d_in, source, axes=sums),
        "R": xp.tensordot(d_rec, h_prev, axes=sums),
        "Wb": d_in.sum(axis=(0, 1)),
        "Rb": d_rec.sum(axis=(0, 1)),
    }
    ds0 = (J[0].swapaxes(-1, -2) @ lam[0][..., None])[..., 0]
    return weights, xp.matmul(d_in, W), ds0


def _preactivation_gradients(cell: Cell, xw, R, Rb, previous, lam):
    """Gradients of the gate pre-activations, input side and recurrent side (they differ only in
    the GRU's reset-gated h block), from lam = dL/ds_t, every step at once."""
    xp, H = namespace(xw), R.shape[1]
    if cell is Cell.RNN:
        h = xp.tanh(xw + previous @ R.T)
        d = lam * (1 - h * h)
        return d, d
    if cell is Cell.GRU:
        recurrent = previous @ R.T
        z = sigmoid(xw[..., :H] + recurrent[..., :H], xp)
        r = sigmoid(xw[..., H : 2 * H] + recurrent[..., H : 2 * H], xp)
        recurrent_h = recurrent[..., 2 * H :] + Rb[2 * H :]
        n = xp.tanh(xw[..., 2 * H :] + r * recurrent_h)
        dz = lam * (previous - n) * z * (1 - z)
        dn = lam * (1 - z) * (1 - n * n)
        dr = dn * recurrent_h * r * (1 - r)
        return xp.concatenate([dz, dr, dn], -1), xp.concatenate([dz, dr, dn * r], -1)
    a = xw + previous[..., :H] @ R.T
    i, o, f = (sigmoid(a[..., k * H : (k + 1) * H], xp) for k in range(3))
    g = xp.tanh(a[..., 3 * H :])
    c_prev = previous[..., H:]
    tanh_c = xp.tanh(f * c_prev + i * g)
    lam_h, lam_c = lam[..., :H], lam[..., H:]
    dc = lam_c + lam_h * o * (1 - tanh_c * tanh_c)
    d = xp.concatenate(
        [
            dc * g * i * (1 - i),
            lam_h * tanh_c * o * (1 - o),
            dc * c_prev * f * (1 - f),
            dc * i * (1 - g * g),
        ],
        -1,
    )
    return d, d
