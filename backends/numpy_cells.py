"""The cell equations for one direction of one layer, forward and backward through time.

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
import types
from typing import Any

from backends.array_namespace import namespace
from harness.model.spec import Cell


def sigmoid_(a: Any, xp: types.ModuleType) -> None:
    """In place; sigmoid(a) = (1 + tanh(a/2)) / 2 never overflows, unlike 1 / (1 + exp(-a))."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def projection_bias(cell: Cell, Wb, Rb, linear_before_reset: bool = True):
    """The biases that sit outside the recurrence, added to W x_t: Wb + Rb, except the canonical
    GRU's Rb_h, which stays inside (the reset gate multiplies it). Every input projection (the
    reference's, the Newton solver's) takes its bias from here."""
    bias = Wb + Rb
    if cell is Cell.GRU and linear_before_reset:
        H = Rb.shape[0] // 3
        bias[2 * H :] = Wb[2 * H :]
    return bias


@dataclasses.dataclass(frozen=True)
class Variant:
    """The ONNX forms of a cell beyond the canonical one, as the step equations need them: one
    field per name of harness.model.spec.VARIANTS, its default the canonical cell's, except
    that `peepholes` holds this direction's P [3H] (i, o, f), or None."""

    linear_before_reset: bool = True
    peepholes: Any = None
    input_forget: bool = False
    clip: float | None = None

    @classmethod
    def of(cls, spec, P=None) -> Variant:
        """A spec's variant, with one direction's peepholes P."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: (P if n == "peepholes" else getattr(spec, n)) for n in names})

    @property
    def canonical(self) -> bool:
        return (
            all(
                getattr(self, f.name) is f.default or getattr(self, f.name) == f.default
                for f in dataclasses.fields(self)
                if f.name != "peepholes"
            )
            and self.peepholes is None
        )


CANONICAL = Variant()


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
    non-canonical variant runs the general step (forward only: no tape for BPTT)."""
    xp = namespace(xw)
    T, GH, B = xw.shape
    H = h0.shape[0]
    slots = T if keep_tape else 1
    S = xp.empty((T + 1, H, B), dtype=xw.dtype)
    S[0] = h0
    tape = Tape(S, None, None, None, mask)
    if not variant.canonical:
        if keep_tape:
            raise ValueError("the hand-written BPTT covers the canonical cells only")
        tape.cells = _variant_forward(cell, xw, R, Rb, S, c0, mask, variant, xp)
        return tape
    if cell is Cell.RNN:
        _rnn_forward(xw, R, S, mask, xp)
        return tape
    tape.gates = xp.empty((slots, GH, B), dtype=xw.dtype)
    if cell is Cell.LSTM:
        tape.cells = xp.empty((T + 1 if keep_tape else 2, H, B), dtype=xw.dtype)
        tape.cells[0] = c0
        _lstm_forward(xw, R, S, tape.cells, tape.gates, mask, xp)
    else:
        tape.recurrent = xp.empty((slots, GH, B), dtype=xw.dtype)
        _gru_forward(xw, R, Rb[2 * H :, None], S, tape.gates, tape.recurrent, mask, xp)
    return tape


def _hold(arrays, k: int, mask, xp) -> None:
    """Padding step: the state carries over unchanged."""
    if mask is not None:
        for array in arrays:
            n = len(array)
            xp.copyto(array[(k + 1) % n], array[k % n], where=~mask[k])


def _rnn_forward(xw, R, S, mask, xp) -> None:
    for k in range(len(xw)):
        h = S[k + 1]
        xp.matmul(R, S[k], out=h)
        h += xw[k]
        xp.tanh(h, out=h)
        _hold((S,), k, mask, xp)


def _lstm_forward(xw, R, S, C, A, mask, xp) -> None:
    H = S.shape[1]
    ig = xp.empty_like(S[0])
    for k in range(len(xw)):
        a = A[k % len(A)]
        xp.matmul(R, S[k], out=a)
        a += xw[k]
        sigmoid_(a[: 3 * H], xp)  # i, o, f are contiguous in the ONNX order
        xp.tanh(a[3 * H :], out=a[3 * H :])
        i, o, f, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        c_prev, c = C[k % len(C)], C[(k + 1) % len(C)]
        xp.multiply(f, c_prev, out=c)
        xp.multiply(i, g, out=ig)
        c += ig
        h = S[k + 1]
        xp.tanh(c, out=h)
        h *= o
        _hold((S, C), k, mask, xp)


def _gru_forward(xw, R, Rb_h, S, A, AH, mask, xp) -> None:
    H = S.shape[1]
    for k in range(len(xw)):
        a, ah = A[k % len(A)], AH[k % len(AH)]
        xp.matmul(R, S[k], out=ah)
        ah[2 * H :] += Rb_h
        xp.add(ah[: 2 * H], xw[k, : 2 * H], out=a[: 2 * H])
        sigmoid_(a[: 2 * H], xp)
        z, r, n = a[:H], a[H : 2 * H], a[2 * H :]
        xp.multiply(r, ah[2 * H :], out=n)  # linear_before_reset: r * (R_h h + Rb_h)
        n += xw[k, 2 * H :]
        xp.tanh(n, out=n)
        h = S[k + 1]
        xp.subtract(S[k], n, out=h)
        h *= z
        h += n  # h = (1 - z) n + z h_prev
        _hold((S,), k, mask, xp)


def _variant_forward(cell: Cell, xw, R, Rb, S, c0, mask, v: Variant, xp):
    """The ONNX operator's step with linear_before_reset=0, peepholes, input_forget or clip,
    as ONNX Runtime computes them: clip bounds every activation's input (after the peephole
    term), input_forget makes f = 1 - i, the output gate's peephole reads the new cell.
    Returns the ring of two cell states (LSTM) or None."""
    H = S.shape[1]
    bound = v.clip
    clip = (lambda a: xp.clip(a, -bound, bound)) if bound is not None else (lambda a: a)
    sigmoid = lambda a: 0.5 * (1 + xp.tanh(0.5 * a))  # noqa: E731
    C: Any = None  # the LSTM's ring of two cell states
    if cell is Cell.LSTM:
        C = xp.empty((2, H, S.shape[2]), dtype=xw.dtype)
        C[0] = c0
        P = None if v.peepholes is None else v.peepholes.reshape(3, H, 1)
    for k in range(len(xw)):
        h_prev = S[k]
        if cell is Cell.RNN:
            S[k + 1] = xp.tanh(clip(R @ h_prev + xw[k]))
        elif cell is Cell.GRU:
            zr = sigmoid(clip(R[: 2 * H] @ h_prev + xw[k, : 2 * H]))
            z, r = zr[:H], zr[H:]
            if v.linear_before_reset:
                inner = r * (R[2 * H :] @ h_prev + Rb[2 * H :, None])
            else:  # Rb_h sits in xw with the other biases
                inner = R[2 * H :] @ (r * h_prev)
            n = xp.tanh(clip(xw[k, 2 * H :] + inner))
            S[k + 1] = (1 - z) * n + z * h_prev
        else:
            c_prev = C[k % 2]
            a = R @ h_prev + xw[k]
            a_i, a_o, a_f, a_c = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
            if P is not None:
                a_i, a_f = a_i + P[0] * c_prev, a_f + P[2] * c_prev
            i = sigmoid(clip(a_i))
            f = 1 - i if v.input_forget else sigmoid(clip(a_f))
            c = f * c_prev + i * xp.tanh(clip(a_c))
            if P is not None:
                a_o = a_o + P[1] * c
            C[(k + 1) % 2] = c
            S[k + 1] = sigmoid(clip(a_o)) * xp.tanh(c)
        _hold((S,) if C is None else (S, C), k, mask, xp)
    return C


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
    step_back = _STEP_BACK[cell]
    for k in reversed(range(T)):
        dh = dh + dY[k]  # the gradient of S[k+1]
        dh_new, dc_new, dh_pass, dc_pass = dh, dc, 0, 0
        if tape.mask is not None:  # S[k+1] = S[k] where step k is padding
            keep = tape.mask[k]
            dh_new, dh_pass = xp.where(keep, dh, 0), xp.where(keep, 0, dh)
            if dc is not None:
                dc_new, dc_pass = xp.where(keep, dc, 0), xp.where(keep, 0, dc)
        dh_direct, dc_prev = step_back(tape, k, dh_new, dc_new, dA[k], dAh[k])
        dh = dh_direct + R.T @ dAh[k] + dh_pass
        if dc is not None:
            dc = dc_prev + dc_pass
    return dA, dAh, dh, dc


def _rnn_step_back(tape: Tape, k: int, dh, dc, da, dah):
    h = tape.states[k + 1]
    da[...] = dh * (1 - h * h)
    return 0, None


def _lstm_step_back(tape: Tape, k: int, dh, dc, da, dah):
    H = dh.shape[0]
    a = tape.gates[k]
    i, o, f, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
    c_prev, c = tape.cells[k], tape.cells[k + 1]
    tanh_c = namespace(c).tanh(c)
    dc_total = dc + dh * o * (1 - tanh_c * tanh_c)
    da[:H] = dc_total * g * i * (1 - i)
    da[H : 2 * H] = dh * tanh_c * o * (1 - o)
    da[2 * H : 3 * H] = dc_total * c_prev * f * (1 - f)
    da[3 * H :] = dc_total * i * (1 - g * g)
    return 0, dc_total * f


def _gru_step_back(tape: Tape, k: int, dh, dc, da, dah):
    H = dh.shape[0]
    a = tape.gates[k]
    z, r, n = a[:H], a[H : 2 * H], a[2 * H :]
    recurrent_h = tape.recurrent[k][2 * H :]
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (tape.states[k] - n) * z * (1 - z)
    dr = dn * recurrent_h * r * (1 - r)
    da[:H] = dah[:H] = dz
    da[H : 2 * H] = dah[H : 2 * H] = dr
    da[2 * H :] = dn
    dah[2 * H :] = dn * r
    return dh * z, None


_STEP_BACK = {Cell.RNN: _rnn_step_back, Cell.LSTM: _lstm_step_back, Cell.GRU: _gru_step_back}
