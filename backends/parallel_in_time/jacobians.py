"""Each cell's step f(s_{t-1}, x_t) and its Jacobian J_t = df/ds_{t-1}, for all steps at once.

Batch-major throughout: states [T, B, N], with N = H (RNN, GRU) or 2H (LSTM: s = concat(h, c)).
`xw` [T, B, G*H] is the input projection W x_t plus every bias outside the recurrence (the
GRU's Rb_h stays inside: the reset gate multiplies it), computed once before the iterations.
Gate blocks of R follow the canonical (ONNX) order: LSTM i, o, f, c; GRU z, r, h.

`mode` picks what comes back with f: None (f only), "dense" (J [T, B, N, N]) or "diagonal"
(the diagonal of J, [T, B, N]). Every Jacobian term is diag(coefficient) times a block of R,
or a diagonal matrix; `_Terms` builds either form from the same coefficients.
"""

from __future__ import annotations

from typing import Any

from backends.numpy_cells import projection_bias
from backends.parallel_in_time.arrays import eye, namespace
from harness.model.spec import Cell

MODES = (None, "dense", "diagonal")


def sigmoid(a: Any, xp) -> Any:
    return 0.5 + 0.5 * xp.tanh(0.5 * a)


def input_projection(cell: Cell, x, W, Wb, Rb) -> Any:
    """x [T, B, I] -> W x_t + biases, [T, B, G*H]: one product for the whole sequence."""
    return namespace(x).matmul(x, W.T) + projection_bias(cell, Wb, Rb)


class _Terms:
    """Sums of diag(coefficient) @ block and diagonal matrices, as dense J or as its diagonal."""

    def __init__(self, R, mode: str | None):
        self.R, self.mode, self.xp = R, mode, namespace(R)
        self.H = R.shape[1]

    def block(self, g: int):
        return self.R[g * self.H : (g + 1) * self.H]

    def scaled(self, coefficient, g: int):
        """diag(coefficient) @ R_g."""
        if self.mode == "dense":
            return coefficient[..., :, None] * self.block(g)
        return coefficient * self.block(g).diagonal()

    def rows(self, coefficient, matrix):
        """diag(coefficient) @ matrix, for a matrix of this form."""
        return coefficient[..., :, None] * matrix if self.mode == "dense" else coefficient * matrix

    def diagonal(self, values):
        if self.mode == "dense":
            return values[..., :, None] * eye(self.xp, values.shape[-1], values)
        return values


def rnn_step(xw, R, Rb, s_prev, mode: str | None):
    xp = namespace(xw)
    h = xp.tanh(xw + xp.matmul(s_prev, R.T))
    if mode is None:
        return h, None
    return h, _Terms(R, mode).scaled(1 - h * h, 0)


def gru_step(xw, R, Rb, s_prev, mode: str | None):
    xp = namespace(xw)
    H = R.shape[1]
    recurrent = xp.matmul(s_prev, R.T)
    z = sigmoid(xw[..., :H] + recurrent[..., :H], xp)
    r = sigmoid(xw[..., H : 2 * H] + recurrent[..., H : 2 * H], xp)
    recurrent_h = recurrent[..., 2 * H :] + Rb[2 * H :]
    n = xp.tanh(xw[..., 2 * H :] + r * recurrent_h)
    h = n + z * (s_prev - n)  # (1 - z) n + z h_prev
    if mode is None:
        return h, None
    terms = _Terms(R, mode)
    dn = (1 - z) * (1 - n * n)
    J = (
        terms.diagonal(z)
        + terms.scaled((s_prev - n) * z * (1 - z), 0)
        + terms.scaled(dn * recurrent_h * r * (1 - r), 1)
        + terms.scaled(dn * r, 2)
    )
    return h, J


def lstm_step(xw, R, Rb, s_prev, mode: str | None):
    xp = namespace(xw)
    H = R.shape[1]
    h_prev, c_prev = s_prev[..., :H], s_prev[..., H:]
    a = xw + xp.matmul(h_prev, R.T)
    i, o, f = (sigmoid(a[..., k * H : (k + 1) * H], xp) for k in range(3))
    g = xp.tanh(a[..., 3 * H :])
    c = f * c_prev + i * g
    tanh_c = xp.tanh(c)
    s = xp.concatenate([o * tanh_c, c], axis=-1)
    if mode is None:
        return s, None
    terms = _Terms(R, mode)
    dh_dc = o * (1 - tanh_c * tanh_c)
    dc_dhp = (
        terms.scaled(g * i * (1 - i), 0)
        + terms.scaled(c_prev * f * (1 - f), 2)
        + terms.scaled(i * (1 - g * g), 3)
    )
    dh_dhp = terms.scaled(tanh_c * o * (1 - o), 1) + terms.rows(dh_dc, dc_dhp)
    if mode == "diagonal":
        return s, xp.concatenate([dh_dhp, f], axis=-1)
    top = xp.concatenate([dh_dhp, terms.diagonal(dh_dc * f)], axis=-1)
    bottom = xp.concatenate([dc_dhp, terms.diagonal(f)], axis=-1)
    return s, xp.concatenate([top, bottom], axis=-2)


STEPS = {Cell.RNN: rnn_step, Cell.GRU: gru_step, Cell.LSTM: lstm_step}


def step(cell: Cell, xw, R, Rb, s_prev, mode: str | None = None):
    """(f, J) for every step at once: s_prev [T, B, N] holds the state before each step."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: allowed None, 'dense', 'diagonal'")
    return STEPS[cell](xw, R, Rb, s_prev, mode)
