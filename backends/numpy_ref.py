"""The oracle: the canonical model in plain NumPy (or CuPy), forward and hand-written BPTT.

Model-level conventions shared by every backend:
    x    [T, B, I]  ([B, T, I] when spec.batch_first)
    y    [T, B, D*H] the last layer's outputs, directions concatenated (zero at padded steps)
    h_n  [L*D, B, H] final states, layer-major then direction (PyTorch's h_n layout)
    c_n  like h_n, LSTM only
    head [B, units]  dense head on the last layer's final states, directions concatenated
`sequence_lens` follows ONNX: the final state of a sample is its state at its last valid step,
and a reverse direction starts at that step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backends import numpy_cells
from backends.cell_update import CANONICAL, Variant
from backends.numpy_bptt import model_backward
from backends.numpy_cells import Tape, namespace
from harness.model.outputs import Outputs
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, ModelSpec


@dataclasses.dataclass
class LayerTape:
    x: Any  # the layer's input [T, B, I], time order
    directions: list[Tape]


@dataclasses.dataclass
class ModelTape:
    spec: ModelSpec
    layers: list[LayerTape]
    mask: Any
    head_in: Any = None
    head_out: Any = None


def forward(spec: ModelSpec, params: Mapping[str, Any], x, seq_lens=None, h0=None, c0=None):
    """Inference: Outputs only, keeping no more than the outputs need."""
    return _forward(spec, params, x, seq_lens, h0, c0, keep_tape=False)[0]


def forward_with_tape(spec: ModelSpec, params, x, seq_lens=None, h0=None, c0=None):
    """Forward that also returns the ModelTape `backward` needs."""
    return _forward(spec, params, x, seq_lens, h0, c0, keep_tape=True)


def _forward(spec, params, x, seq_lens, h0, c0, keep_tape):
    if keep_tape and spec.variants:
        raise NotSupported(
            f"the hand-written BPTT covers the canonical cells; this model has "
            f"{spec.describe_variants()}: forward only"
        )
    xp = namespace(x)
    x = xp.asarray(x, dtype=spec.dtype)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = _check_input(spec, x)
    LD, H = spec.num_layers * spec.num_directions, spec.hidden_size
    h0 = _initial_state(xp, spec, h0, (LD, B, H), "h0")
    c0 = _initial_state(xp, spec, c0, (LD, B, H), "c0") if spec.cell is Cell.LSTM else None
    mask = sequence_mask(xp, seq_lens, T, B)
    layer_input, tapes, h_n, c_n = x, [], [], []
    for layer in range(spec.num_layers):
        D = spec.num_directions
        rows = slice(layer * D, (layer + 1) * D)
        W, R, Wb, Rb = (xp.asarray(params[f"l{layer}.{k}"]) for k in ("W", "R", "Wb", "Rb"))
        directions = ("forward", "reverse")[:D]
        P = params.get(f"l{layer}.P")
        variants = [variant_of(spec, None if P is None else xp.asarray(P[j])) for j in range(D)]
        Y, Y_h, Y_c, dir_tapes = run_layer(
            spec.cell,
            layer_input,
            W,
            R,
            Wb,
            Rb,
            h0[rows],
            None if c0 is None else c0[rows],
            mask,
            directions,
            keep_tape,
            variants,
        )
        tapes.append(LayerTape(layer_input, dir_tapes))
        layer_input = concat_directions(Y)
        h_n.append(Y_h)
        c_n.append(Y_c)
    y = layer_input.transpose(1, 0, 2) if spec.batch_first else layer_input
    out = Outputs(y, xp.concatenate(h_n), xp.concatenate(c_n) if c0 is not None else None)
    tape = ModelTape(spec, tapes, mask)
    if spec.head is not None:
        tape.head_in = concat_directions(out.h_n[-spec.num_directions :][None])[0]
        out.head = tape.head_out = head_forward(spec, params, tape.head_in, xp)
    return out, tape


def _check_input(spec: ModelSpec, x) -> tuple[int, int, int]:
    if x.ndim != 3 or x.shape[2] != spec.input_size:
        layout = "[B, T, I]" if spec.batch_first else "[T, B, I]"
        raise ValueError(
            f"x has shape {tuple(x.shape)}: expected {layout} with I = {spec.input_size}"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x has shape {tuple(x.shape)}: T and B must be at least 1")
    return x.shape


def _initial_state(xp, spec, state, shape, name):
    if state is None:
        return xp.zeros(shape, dtype=spec.dtype)
    state = xp.asarray(state, dtype=spec.dtype)
    if state.shape != shape:
        raise ValueError(f"{name} has shape {tuple(state.shape)}: expected [L*D, B, H] = {shape}")
    return state


def sequence_mask(xp, seq_lens, T: int, B: int):
    """[T, 1, B] bool, True at valid steps; None when every sequence has length T."""
    if seq_lens is None:
        return None
    lens = np.asarray(seq_lens if xp is np else xp.asnumpy(xp.asarray(seq_lens)))
    if lens.shape != (B,) or not np.issubdtype(lens.dtype, np.integer):
        raise ValueError(f"seq_lens must be {B} integers, got shape {lens.shape} {lens.dtype}")
    if lens.min() < 1 or lens.max() > T:
        raise ValueError(f"seq_lens must lie in [1, T={T}], got {lens.min()}..{lens.max()}")
    if (lens == T).all():
        return None
    return xp.asarray(np.arange(T)[:, None, None] < lens[None, None, :])


def concat_directions(Y):
    """[T, D, B, H] -> [T, B, D*H]: each direction's h side by side."""
    T, D, B, H = Y.shape
    return Y.transpose(0, 2, 1, 3).reshape(T, B, D * H)


def variant_of(spec: ModelSpec, P=None) -> Variant:
    """The step equations' Variant of a spec, with one direction's peepholes P [3H]."""
    if not spec.variants:
        return CANONICAL
    return Variant.of(spec, P)


def run_layer(
    cell, x, W, R, Wb, Rb, h0, c0, mask, directions: Sequence[str], keep_tape, variants=None
):
    """One layer in ONNX form: Y [T, D, B, H], Y_h [D, B, H], Y_c [D, B, H] or None, tapes.
    The cells run feature-major ([H, B]); the transposes happen here, once per layer.
    variants: one cell_update.Variant per direction (default: the canonical cell)."""
    xp = namespace(x)
    T, B, _ = x.shape
    H = R.shape[-1]
    Y = xp.empty((T, len(directions), B, H), dtype=x.dtype)
    Y_h, Y_c = xp.empty((len(directions), B, H), dtype=x.dtype), None
    if cell is Cell.LSTM:
        Y_c = xp.empty_like(Y_h)
    tapes = []
    variants = variants or [CANONICAL] * len(directions)
    for j, direction in enumerate(directions):
        variant = variants[j]
        xw = input_projection(cell, x, W[j], Wb[j], Rb[j], variant.linear_before_reset)
        flip = direction == "reverse"
        tape = numpy_cells.forward(
            cell,
            xw[::-1] if flip else xw,
            R[j],
            Rb[j],
            h0[j].T,
            c0[j].T if Y_c is not None else None,
            None if mask is None else (mask[::-1] if flip else mask),
            keep_tape,
            variant,
        )
        states = tape.states[1:].transpose(0, 2, 1)
        Y[:, j] = states[::-1] if flip else states
        Y_h[j] = tape.states[-1].T
        if Y_c is not None:
            Y_c[j] = tape.cells[T % len(tape.cells)].T
        tapes.append(tape)
    if mask is not None:
        Y *= mask[:, :, :, None]
    return Y, Y_h, Y_c, tapes


def input_projection(cell: Cell, x, W, Wb, Rb, linear_before_reset: bool = True):
    """W x_t for every step at once, feature-major [T, G*H, B], plus the biases outside the
    recurrence (the canonical GRU's Rb_h stays inside: the reset gate multiplies it)."""
    xw = namespace(x).matmul(W, x.transpose(0, 2, 1))  # one batched GEMM, no transpose copy
    xw += numpy_cells.projection_bias(cell, Wb, Rb, linear_before_reset)[:, None]
    return xw


def head_forward(spec, params, head_in, xp):
    logits = head_in @ xp.asarray(params["head.W"]).T + xp.asarray(params["head.b"])
    if spec.head.activation == "softmax":
        logits -= logits.max(axis=-1, keepdims=True)
        xp.exp(logits, out=logits)
        logits /= logits.sum(axis=-1, keepdims=True)
    return logits


def backward(params, tape: ModelTape, dy=None, dh_n=None, dc_n=None, dhead=None):
    """Gradients of a scalar loss, given its gradients with respect to the outputs. Returns a dict
    keyed like the canonical weights, plus "x", "h0" and (LSTM) "c0"."""
    return model_backward(params, tape, dy, dh_n, dc_n, dhead)


def onnx_op(
    cell,
    X,
    W,
    R,
    B=None,
    sequence_lens=None,
    initial_h=None,
    initial_c=None,
    P=None,
    *,
    direction="forward",
    layout=0,
    linear_before_reset=1,
    input_forget=0,
    clip=None,
):
    """One ONNX RNN/LSTM/GRU node with the default activations, input for input and attribute
    for attribute (GRU linear_before_reset 0 or 1, LSTM peepholes P and input_forget, clip):
    returns Y, Y_h and Y_c (None unless LSTM)."""
    cell = Cell(cell)
    xp = namespace(X)
    if layout == 1:  # batch-major X [B, T, I] and states [B, D, H]
        X = X.transpose(1, 0, 2)
        initial_h = None if initial_h is None else initial_h.transpose(1, 0, 2)
        initial_c = None if initial_c is None else initial_c.transpose(1, 0, 2)
    T, batch, _ = X.shape
    D, GH, H = R.shape
    if B is None:
        B = xp.zeros((D, 2 * GH), dtype=X.dtype)
    zeros = xp.zeros((D, batch, H), dtype=X.dtype)
    directions = {"forward": ("forward",), "reverse": ("reverse",)}.get(
        direction, ("forward", "reverse")
    )
    variants = [
        Variant(
            linear_before_reset=bool(linear_before_reset) or cell is not Cell.GRU,
            peepholes=None if P is None else P[j],
            input_forget=bool(input_forget),
            clip=clip,
        )
        for j in range(D)
    ]
    Y, Y_h, Y_c, _ = run_layer(
        cell,
        X,
        W,
        R,
        B[:, :GH],
        B[:, GH:],
        zeros if initial_h is None else initial_h,
        zeros if initial_c is None else initial_c,
        sequence_mask(xp, sequence_lens, T, batch),
        directions,
        keep_tape=False,
        variants=variants,
    )
    if layout == 1:
        Y, Y_h = Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2)
        Y_c = None if Y_c is None else Y_c.transpose(1, 0, 2)
    return Y, Y_h, Y_c
