"""Each cell's step f(s_{t-1}, x_t) and its Jacobian J_t = df/ds_{t-1}, for all steps at once,
from the step equations and local derivatives in backends/cell_update.py.

Batch-major throughout: states [T, B, N], with N = H (RNN, GRU) or 2H (LSTM: s = concat(h, c)).
`xw` [T, B, G*H] is the input projection W x_t plus every bias outside the recurrence (the
GRU's Rb_h stays inside: the reset gate multiplies it), computed once before the iterations.
Gate blocks of R follow the canonical (ONNX) order: LSTM i, o, f, c; GRU z, r, h.

`mode` picks what comes back with f: None (f only), "dense" (J [T, B, N, N]) or "diagonal"
(the diagonal of J, [T, B, N]). Every Jacobian term is diag(coefficient) times a block of R, or
a diagonal matrix: the coefficients are the local derivatives of each part of the new state
(`Derivatives`), so J, its diagonal, J v (tangent.py) and the adjoint's gradients (adjoint.py)
all come from the same equations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from backends.cell_update import (
    Blocks,
    Local,
    blocks_of,
    gru_local,
    gru_update,
    lstm_local,
    lstm_update,
    rnn_local,
    rnn_update,
)
from backends.numpy_cells import projection_bias
from backends.parallel_in_time.arrays import eye, namespace
from harness.model.spec import Cell

MODES = (None, "dense", "diagonal")


def input_projection(cell: Cell, x, W, Wb, Rb) -> Any:
    """x [T, B, I] -> W x_t + biases, [T, B, G*H]: one product for the whole sequence."""
    return namespace(x).matmul(x, W.T) + projection_bias(cell, Wb, Rb)


@dataclasses.dataclass(frozen=True)
class Evaluated:
    """The steps evaluated: the new states s and what the local derivatives read (the activated
    gates; the GRU's recurrent term R_h h_prev + Rb_h in its h block)."""

    cell: Cell
    s_prev: Any
    s: Any
    gates: Any
    recurrent: Any
    blocks: Blocks

    def local(self, dh: Any, dc: Any = 0) -> Local:
        """The gradients of the pre-activations and of s_prev (not through R), given those of
        the new state: dh, and dc for the LSTM (None is zero; scalars broadcast)."""
        H = self.blocks.H
        if self.cell is Cell.RNN:
            return rnn_local(self.s, dh)
        if self.cell is Cell.GRU:
            return gru_local(self.gates, self.recurrent, self.s_prev, dh, self.blocks)
        xp = namespace(self.s)
        c_prev, c = self.s_prev[..., H:], self.s[..., H:]
        return lstm_local(self.gates, c_prev, c, dh, dc, self.blocks, xp)


def evaluate(cell: Cell, xw, R, Rb, s_prev) -> Evaluated:
    """f for every step at once: s_prev [T, B, N] holds the state before each step."""
    xp, H = namespace(xw), R.shape[1]
    blocks = blocks_of(H, False)
    if cell is Cell.RNN:
        h = xp.matmul(s_prev, R.T)
        h += xw
        rnn_update(h, h, xp)
        return Evaluated(cell, s_prev, h, None, None, blocks)
    if cell is Cell.GRU:
        recurrent = xp.matmul(s_prev, R.T)
        recurrent[..., 2 * H :] += Rb[2 * H :]
        a, h = xp.empty_like(recurrent), xp.empty_like(s_prev)
        gru_update(a, recurrent, xw, s_prev, h, blocks, xp)
        return Evaluated(cell, s_prev, h, a, recurrent, blocks)
    a = xp.matmul(s_prev[..., :H], R.T)
    a += xw
    s = xp.empty_like(s_prev)
    lstm_update(a, s_prev[..., H:], s[..., H:], s[..., :H], blocks, xp)
    return Evaluated(cell, s_prev, s, a, None, blocks)


@dataclasses.dataclass(frozen=True)
class Derivatives:
    """J_t by parts of the state (h; h and c for the LSTM): part p of the new state has the
    coefficients gates[p][k] on block k of R (acting on h_prev) and carry[p][q] on part q of the
    previous state directly (None: zero). So J_{p,0} = sum_k diag(gates[p][k]) R_k +
    diag(carry[p][0]) and J_{p,q} = diag(carry[p][q]) for q > 0."""

    gates: tuple[tuple[Any, ...], ...]
    carry: tuple[tuple[Any, ...], ...]
    H: int

    @classmethod
    def of(cls, ev: Evaluated) -> Derivatives:
        """The local derivatives with a unit gradient on each part of the new state in turn."""
        if ev.cell is Cell.LSTM:
            via_h, via_c = ev.local(1, 0), ev.local(None, 1)
            gates = (via_h.recurrent, via_c.recurrent)
            return cls(gates, ((None, via_h.c_prev), (None, via_c.c_prev)), ev.blocks.H)
        local = ev.local(1)
        return cls((local.recurrent,), ((local.h_prev,),), ev.blocks.H)

    def _block(self, k: int, R) -> Any:
        return R[k * self.H : (k + 1) * self.H]

    def dense(self, R) -> Any:
        """J [..., N, N]."""
        xp, parts = namespace(R), len(self.gates)
        rows = []
        for p in range(parts):
            row = []
            for q in range(parts):
                block = None
                if q == 0:
                    for k, coefficient in enumerate(self.gates[p]):
                        if coefficient is not None:
                            block = _add(block, coefficient[..., :, None] * self._block(k, R))
                diagonal = self.carry[p][q]
                if diagonal is not None:
                    block = _add(block, diagonal[..., :, None] * eye(xp, self.H, diagonal))
                row.append(block)
            rows.append(row[0] if parts == 1 else xp.concatenate(row, axis=-1))
        return rows[0] if parts == 1 else xp.concatenate(rows, axis=-2)

    def diagonal(self, R) -> Any:
        """The diagonal of J [..., N]."""
        xp, parts = namespace(R), len(self.gates)
        out = []
        for p in range(parts):
            total = None
            if p == 0:
                for k, coefficient in enumerate(self.gates[p]):
                    if coefficient is not None:
                        total = _add(total, coefficient * self._block(k, R).diagonal())
            carry = self.carry[p][p]
            if carry is not None:
                total = _add(total, carry + 0)
            out.append(total)
        return out[0] if parts == 1 else xp.concatenate(out, axis=-1)

    def apply(self, t: int, v, R) -> Any:
        """J_t v for step t of these derivatives; v [B, N]."""
        xp, H, parts = namespace(v), self.H, len(self.gates)
        pieces = [v[..., q * H : (q + 1) * H] for q in range(parts)]
        Rv = xp.matmul(pieces[0], R.T)
        out = []
        for p in range(parts):
            total = 0
            for k, coefficient in enumerate(self.gates[p]):
                if coefficient is not None:
                    total = total + coefficient[t] * Rv[..., k * H : (k + 1) * H]
            for q, carry in enumerate(self.carry[p]):
                if carry is not None:
                    total = total + carry[t] * pieces[q]
            out.append(total)
        return out[0] if parts == 1 else xp.concatenate(out, axis=-1)


def _add(total, term):
    """total + term, in place into total once there is one (every first term is a new array)."""
    if total is None:
        return term
    total += term
    return total


def step(cell: Cell, xw, R, Rb, s_prev, mode: str | None = None):
    """(f, J) for every step at once: s_prev [T, B, N] holds the state before each step."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: allowed None, 'dense', 'diagonal'")
    ev = evaluate(cell, xw, R, Rb, s_prev)
    if mode is None:
        return ev.s, None
    derivatives = Derivatives.of(ev)
    return ev.s, derivatives.dense(R) if mode == "dense" else derivatives.diagonal(R)
