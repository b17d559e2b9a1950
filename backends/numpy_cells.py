"""One direction of one layer run step by step, forward and backward through time (BPTT),
with each step's equations from backends/cell_update.py.

Everything here runs in processing order k = 0..T-1 (a reverse direction is handed a flipped
sequence). Arrays come from one namespace `xp`: NumPy, or CuPy for the same code on a GPU.

Arrays are feature-major: a state is [H, B] and the gates [G*H, B], so each gate is one
contiguous block and the recurrent product is one GEMM, R @ h, with R as stored (measured here:
both are about 1.5x faster than the batch-major [B, G*H] layout with strided gate slices).

States S[k] hold h before step k (S[0] = h0), cells C[k] likewise for the LSTM. `xw[k]` is the
input projection W x_k plus every bias that sits outside the recurrence. With a mask, a sample
whose step k is padding keeps its state: S[k+1] = S[k] (ONNX `sequence_lens` semantics).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from backends.array_namespace import namespace
from backends.cell_update import (
    CANONICAL,
    blocks_of,
    gru_local,
    gru_update,
    lstm_local,
    lstm_update,
    rnn_local,
    rnn_update,
)
from harness.model.spec import Cell


def projection_bias(cell: Cell, Wb, Rb, linear_before_reset: bool = True):
    """The biases that sit outside the recurrence, added to W x_t: Wb + Rb, except the canonical
    GRU's Rb_h, which stays inside (the reset gate multiplies it). Every input projection (the
    reference's, the Newton solver's) takes its bias from here."""
    bias = Wb + Rb
    if cell is Cell.GRU and linear_before_reset:
        H = Rb.shape[0] // 3
        bias[2 * H :] = Wb[2 * H :]
    return bias


@dataclasses.dataclass
class Tape:
    """What BPTT needs from one direction's forward pass."""

    states: Any  # S [T+1, H, B]
    cells: Any  # C [T+1, H, B] (LSTM) or None
    gates: Any  # activated gates [T, G*H, B]: LSTM i,o,f,c; GRU z,r,h; None for the RNN
    recurrent: Any  # GRU: R h + Rb [T, 3H, B] (its h part is reset-gated); else None
    mask: Any  # [T, 1, B] bool (True = a valid step) or None


def forward(cell: Cell, xw, R, Rb, h0, c0, mask, keep_tape: bool, variant=CANONICAL) -> Tape:
    """Run T steps; without keep_tape only S (and a ring of two cell states) is kept. A
    non-canonical variant runs forward only: the hand-written BPTT covers the canonical cells."""
    if keep_tape and not variant.canonical:
        raise ValueError("the hand-written BPTT covers the canonical cells only")
    xp = namespace(xw)
    T, GH, B = xw.shape
    H = h0.shape[0]
    slots = T if keep_tape else 1
    S = xp.empty((T + 1, H, B), dtype=xw.dtype)
    S[0] = h0
    tape = Tape(S, None, None, None, mask)
    blocks = blocks_of(H, True)
    if cell is Cell.RNN:
        for k in range(T):
            h = S[k + 1]
            xp.matmul(R, S[k], out=h)
            h += xw[k]
            rnn_update(h, h, xp, variant)
            _hold((S,), k, mask, xp)
        return tape
    tape.gates = A = xp.empty((slots, GH, B), dtype=xw.dtype)
    if cell is Cell.LSTM:
        tape.cells = C = xp.empty((T + 1 if keep_tape else 2, H, B), dtype=xw.dtype)
        C[0] = c0
        for k in range(T):
            a = A[k % slots]
            xp.matmul(R, S[k], out=a)
            a += xw[k]
            lstm_update(a, C[k % len(C)], C[(k + 1) % len(C)], S[k + 1], blocks, xp, variant)
            _hold((S, C), k, mask, xp)
        return tape
    tape.recurrent = AH = xp.empty((slots, GH, B), dtype=xw.dtype)
    Rb_h, R_h = Rb[2 * H :, None], R[2 * H :]

    def reset_product(rh):  # linear_before_reset = 0: R_h (r h_prev)
        return R_h @ rh

    for k in range(T):
        ah = AH[k % slots]
        xp.matmul(R, S[k], out=ah)
        if variant.linear_before_reset:
            ah[2 * H :] += Rb_h
        gru_update(A[k % slots], ah, xw[k], S[k], S[k + 1], blocks, xp, variant, reset_product)
        _hold((S,), k, mask, xp)
    return tape


def _hold(arrays, k: int, mask, xp) -> None:
    """Padding step: the state carries over unchanged."""
    if mask is not None:
        for array in arrays:
            n = len(array)
            xp.copyto(array[(k + 1) % n], array[k % n], where=~mask[k])


def backward(cell: Cell, tape: Tape, R, dY, dh_T, dc_T):
    """BPTT over one direction. dY [T, H, B] is the gradient of the emitted outputs (already
    zero at padded steps); dh_T, dc_T that of the final states. Returns (dA, dAh, dh0, dc0):
    gradients of the pre-activations on the input side dA [T, G*H, B] and on the recurrent
    side dAh (differs from dA only in the GRU's reset-gated h part)."""
    xp = namespace(dY)
    T, _, B = dY.shape
    dA = xp.empty((T, R.shape[0], B), dtype=dY.dtype)
    dAh = xp.empty_like(dA) if cell is Cell.GRU else dA
    dh, dc = dh_T, (dc_T if cell is Cell.LSTM else None)
    for k in reversed(range(T)):
        dh = dh + dY[k]  # the gradient of S[k+1]
        dh_new, dc_new, dh_pass, dc_pass = dh, dc, 0, 0
        if tape.mask is not None:  # S[k+1] = S[k] where step k is padding
            keep = tape.mask[k]
            dh_new, dh_pass = xp.where(keep, dh, 0), xp.where(keep, 0, dh)
            if dc is not None:
                dc_new, dc_pass = xp.where(keep, dc, 0), xp.where(keep, 0, dc)
        dh_direct, dc_prev = _step_back(cell, tape, k, dh_new, dc_new, dA[k], dAh[k])
        dh = dh_direct + R.T @ dAh[k] + dh_pass
        if dc is not None:
            dc = dc_prev + dc_pass
    return dA, dAh, dh, dc


def _step_back(cell: Cell, tape: Tape, k: int, dh, dc, da, dah):
    """Step k's pre-activation gradients into da (input side) and dah (recurrent side), and the
    gradients of its previous states that do not pass through R."""
    blocks = blocks_of(dh.shape[0], True)
    if cell is Cell.RNN:
        local = rnn_local(tape.states[k + 1], dh)
    elif cell is Cell.LSTM:
        xp = namespace(dh)
        cells = tape.cells
        local = lstm_local(tape.gates[k], cells[k], cells[k + 1], dh, dc, blocks, xp)
    else:
        local = gru_local(tape.gates[k], tape.recurrent[k], tape.states[k], dh, blocks)
    for g, (d_in, d_rec) in enumerate(zip(local.inputs, local.recurrent, strict=True)):
        blocks(da, g)[...] = d_in
        if dah is not da:
            blocks(dah, g)[...] = d_rec
    return (0 if local.h_prev is None else local.h_prev), local.c_prev
