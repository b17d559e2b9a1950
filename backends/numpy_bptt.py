"""Backpropagation through time for the whole model: head, layers top-down, directions."""

from __future__ import annotations

from typing import Any

from backends import numpy_cells
from backends.array_namespace import namespace
from harness.model.arrays import Arrays
from harness.model.spec import Cell


def model_backward(params, tape, dy, dh_n, dc_n, dhead) -> Arrays:
    spec = tape.spec
    top = tape.layers[-1]
    xp = namespace(top.x)
    T, B, _ = top.x.shape
    D, H, L = spec.num_directions, spec.hidden_size, spec.num_layers
    grads: Arrays = {}
    d_out = xp.zeros((T, B, D * H), dtype=top.x.dtype) if dy is None else xp.asarray(dy)
    if dy is not None and spec.batch_first:
        d_out = d_out.transpose(1, 0, 2)
    dh_n = xp.zeros((L * D, B, H), dtype=top.x.dtype) if dh_n is None else xp.array(dh_n)
    if spec.cell is Cell.LSTM:
        dc_n = xp.zeros_like(dh_n) if dc_n is None else xp.asarray(dc_n)
    if spec.head is not None and dhead is not None:
        d_head_in = _head_backward(spec, params, tape, xp.asarray(dhead), grads)
        dh_n[-D:] += d_head_in.reshape(B, D, H).transpose(1, 0, 2)
    elif spec.head is not None:
        grads["head.W"] = xp.zeros_like(xp.asarray(params["head.W"]))
        grads["head.b"] = xp.zeros_like(xp.asarray(params["head.b"]))
    dh0: list[Any] = []
    dc0: list[Any] = []
    for layer in reversed(range(L)):
        rows = slice(layer * D, (layer + 1) * D)
        d_out, layer_dh0, layer_dc0 = _layer_backward(
            spec,
            params,
            tape,
            layer,
            d_out,
            dh_n[rows],
            None if dc_n is None else dc_n[rows],
            grads,
        )
        dh0.insert(0, layer_dh0)
        dc0.insert(0, layer_dc0)
    grads["x"] = d_out.transpose(1, 0, 2) if spec.batch_first else d_out
    grads["h0"] = xp.concatenate(dh0)
    if spec.cell is Cell.LSTM:
        grads["c0"] = xp.concatenate(dc0)
    return grads


def _head_backward(spec, params, tape, dhead, grads):
    xp = namespace(dhead)
    d_logits = dhead
    if spec.head.activation == "softmax":
        p = tape.head_out
        d_logits = p * (dhead - (dhead * p).sum(axis=-1, keepdims=True))
    grads["head.W"] = d_logits.T @ tape.head_in
    grads["head.b"] = d_logits.sum(axis=0)
    return d_logits @ xp.asarray(params["head.W"])


def _layer_backward(spec, params, tape, layer, d_out, dh_T, dc_T, grads):
    """Gradients of one layer's weights; returns the gradient of its input and initial states."""
    layer_tape = tape.layers[layer]
    x = layer_tape.x
    xp = namespace(x)
    H = spec.hidden_size
    W, R = xp.asarray(params[f"l{layer}.W"]), xp.asarray(params[f"l{layer}.R"])
    names = ("W", "R", "Wb", "Rb")
    parts: dict[str, list[Any]] = {name: [] for name in names}
    dx = xp.zeros_like(x)
    dh0, dc0 = xp.empty_like(dh_T), None if dc_T is None else xp.empty_like(dc_T)
    for j, dir_tape in enumerate(layer_tape.directions):
        flip = j == 1
        dY = d_out[:, :, j * H : (j + 1) * H].transpose(0, 2, 1)  # feature-major [T, H, B]
        if tape.mask is not None:
            dY = dY * tape.mask
        dA, dAh, dh0_j, dc = numpy_cells.backward(
            spec.cell,
            dir_tape,
            R[j],
            dY[::-1] if flip else dY,
            dh_T[j].T,
            None if dc_T is None else dc_T[j].T,
        )
        dh0[j] = dh0_j.T
        if dc0 is not None:
            dc0[j] = dc.T
        dA_time = dA[::-1] if flip else dA
        parts["W"].append(xp.tensordot(dA_time, x, axes=([0, 2], [0, 1])))
        parts["R"].append(xp.tensordot(dAh, dir_tape.states[:-1], axes=([0, 2], [0, 2])))
        parts["Wb"].append(dA.sum(axis=(0, 2)))
        parts["Rb"].append(dAh.sum(axis=(0, 2)))
        dx += xp.matmul(dA_time.transpose(0, 2, 1), W[j])
    for name in names:
        grads[f"l{layer}.{name}"] = xp.stack(parts[name])
    return dx, dh0, dc0
