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
from backends.parallel_in_time.jacobians import Derivatives, evaluate, input_projection
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
    steps = evaluate(cell, xw, R, Rb, previous)
    J = Derivatives.of(steps).dense(R)
    lam = reverse_scan_transposed(J, g, dense=True)
    H = R.shape[1]
    local = steps.local(lam[..., :H], lam[..., H:] if cell is Cell.LSTM else 0)
    d_in, d_rec = (xp.concatenate(d, axis=-1) for d in (local.inputs, local.recurrent))
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
