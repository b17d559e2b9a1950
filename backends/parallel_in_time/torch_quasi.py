"""The quasi-Newton (quasi-DEER) iteration on torch tensors, fused: the same method, stopping rule
and results as newton.iterate with mode "diagonal", written for torch's kernels.

Per iteration the generic array-namespace path runs one product and ~30 elementwise passes, each
allocating a [T, B, N] tensor (the concatenated previous states, every gate term, J * s, b, the
scan's compositions, the change). Here every buffer is allocated once per solve:

- the states live in two [T+1, B, N] buffers whose row 0 is s0, so "the state before each step"
  is the leading [T, B, N] slice (no concatenation); each iteration writes the new iterate into
  the other buffer and the change is their difference;
- the pre-activations come from one addmm into a preallocated [T*B, G*H] buffer whose addend
  (x W + biases, and for the GRU its recurrent bias R_b,h) is built once per solve;
- f, the diagonal Jacobian and b = f - J s_{t-1} are computed together from the same
  pre-activations with in-place / out= kernels (addcmul, sigmoid_, tanh_), writing f straight
  into the buffer the scan then solves in place;
- the scan composes the Jacobians in place (J is rebuilt every iteration) with addcmul_.

`compile=True` hands the cell's elementwise part (pre-activations -> b, J) to torch.compile, which
fuses it into one loop; it costs a compile per (cell, dtype, device) on first use (measured in
benchmarks/parallel_in_time_probe.py), so it is opt-in: RNNBENCH_PARALLEL_IN_TIME_COMPILE=1
turns it on for the runner.
"""

from __future__ import annotations

import functools
import math
import os

from harness.model.spec import Cell

COMPILE_ENV = "RNNBENCH_PARALLEL_IN_TIME_COMPILE"


def compile_requested() -> bool:
    return os.environ.get(COMPILE_ENV, "") not in ("", "0")


def iterate(cell: Cell, xw, R, Rb, s0, tol: float, max_iter: int, compile: bool | None = None):
    """newton.iterate for mode "diagonal" on torch tensors: (S [T, B, N], (converged,
    iterations, residuals, reason)). xw [T, B, G*H] from input_projection, s0 [B, N]."""
    solver = QuasiNewton(cell, xw, R, Rb, s0, compile)
    residuals: list[float] = []
    for k in range(1, max_iter + 1):
        change = solver.iteration()
        residuals.append(change)
        if change != change:
            return solver.states(), (False, None, residuals, f"a non-finite value at iteration {k}")
        if change <= tol:
            return solver.states(), (True, k, residuals, None)
    reason = f"reached max_iter = {max_iter} with residual {change:.3g} > tol = {tol:g}"
    return solver.states(), (False, None, residuals, reason)


class QuasiNewton:
    """One recurrence's buffers, allocated once; `iteration()` does one update of the iterate
    (starting from s^(0) = 0) and returns the max-abs change (NaN if anything is not finite)."""

    def __init__(self, cell: Cell, xw, R, Rb, s0, compile: bool | None = None):
        import torch

        if compile is None:
            compile = compile_requested()
        T, B, N = xw.shape[0], xw.shape[1], s0.shape[-1]
        self.T, self.B, self.N = T, B, N
        self.step = _STEPS[cell](xw.contiguous(), R, Rb, T * B, compile)
        self.current, self.following = (
            torch.empty((T + 1, B, N), dtype=xw.dtype, device=xw.device) for _ in range(2)
        )
        for ext in (self.current, self.following):
            ext[0] = s0  # row 0: the given initial state, before step 0
        self.current[1:].zero_()
        self.J = torch.empty((T, B, N), dtype=xw.dtype, device=xw.device)

    def iteration(self) -> float:
        T, B, N, J = self.T, self.B, self.N, self.J
        previous, b = self.current[:-1], self.following[1:]
        self.step(previous.view(T * B, N), b.view(T * B, N), J.view(T * B, N))
        # b_t = f_t - J_t s_{t-1} for t >= 1; b_0 = f_0: s_0 is given, the first step is exact
        b[1:].addcmul_(J[1:], previous[1:], value=-1)
        diagonal_scan_(J, b)
        change = _max_abs_difference(b, self.current[1:], out=J)
        self.current, self.following = self.following, self.current
        return change

    def states(self):
        """The current iterate, [T, B, N] (a view of the solver's buffer)."""
        return self.current[1:]


def diagonal_scan_(A, b) -> None:
    """scan.linear_scan for diagonal A, in place on b (the states) and on A (A's odd steps become
    the pairs' compositions, so A is clobbered). The same odd-even rounds and order of operations;
    the even steps' A, all the last round reads, are never overwritten before it reads them."""
    T = b.shape[0]
    if T == 1:
        return
    pairs = T // 2
    odd, A_odd = b[1::2], A[1::2]
    odd.addcmul_(A_odd, b[0 : 2 * pairs : 2])
    if T > 2:
        A_odd.mul_(A[0 : 2 * pairs : 2])
        diagonal_scan_(A_odd, odd)
        b[2::2].addcmul_(A[2::2], b[1 : T - 1 : 2])


def _max_abs_difference(new, old, out) -> float:
    """max |new - old| as a float, NaN when any element is not finite (arrays.max_abs). `old` is
    the previous iterate, finite or the run would have stopped, so a finite difference means a
    finite `new`."""
    import torch

    low, high = torch.aminmax(torch.sub(new, old, out=out))  # one pass; NaN propagates
    change = max(-float(low), float(high))
    return change if math.isfinite(change) else float("nan")


def _tanh_(x, doubled: bool = False):
    """tanh in place as 2 sigmoid(2x) - 1 (x already doubled when `doubled`): torch's CPU
    sigmoid kernel is ~5x faster than its tanh (float32, measured: 2.0 vs 10.7 ms for 2M
    elements); the absolute error is a few ulps of 1 (1.8e-7 in float32, 3.3e-16 in float64)."""
    if not doubled:
        x.mul_(2)
    return x.sigmoid_().mul_(2).sub_(1)


# Each cell: built once per solve with its preallocated buffers; called with the previous states
# [M, N] (M = T*B), it writes f into `f` [M, N] and the diagonal of J into `J` [M, N].


class _Step:
    def __init__(self, xw, R, Rb, M: int, compile: bool):
        import torch

        self.torch = torch
        H = R.shape[1]
        self.H, self.M = H, M
        self.RT = R.T  # addmm reads the transposed view; no copy
        # diag(R_g) for each gate block g, [G, H]
        self.Rd = torch.stack([R[g * H : (g + 1) * H].diagonal() for g in range(R.shape[0] // H)])
        self.xw = xw.view(M, xw.shape[-1])
        self.pre = torch.empty((M, R.shape[0]), dtype=xw.dtype, device=xw.device)
        # each cell's subclass defines its elementwise part (a staticmethod, compiled or not)
        self.compiled = _compiled(type(self).elementwise) if compile else None  # type: ignore[attr-defined]

    def empty(self, *shape):
        return self.torch.empty(shape, dtype=self.pre.dtype, device=self.pre.device)


class _RNN(_Step):
    def __call__(self, prev, f, J):
        torch = self.torch
        torch.addmm(self.xw, prev, self.RT, out=self.pre)
        if self.compiled is not None:
            self.compiled(self.pre, self.Rd[0], f, J)
            return
        _tanh_(torch.mul(self.pre, 2, out=f), doubled=True)
        torch.mul(f, f, out=J)  # J = (1 - h^2) R_d
        J.sub_(1).mul_(self.Rd[0]).neg_()

    @staticmethod
    def elementwise(pre, Rd, f, J):
        h = pre.tanh()
        f.copy_(h)
        J.copy_((1 - h * h) * Rd)


class _GRU(_Step):
    def __init__(self, xw, R, Rb, M, compile):
        super().__init__(xw, R, Rb, M, compile)
        H = self.H
        # the addmm's addend: x W + biases for z and r; the recurrent bias R_b,h for the
        # candidate, whose recurrent part the reset gate scales (xw_h is added after)
        self.addend = self.torch.cat(
            [self.xw[:, : 2 * H], Rb[2 * H :].expand(M, H)], dim=1
        ).contiguous()
        self.xw_h = self.xw[:, 2 * H :]
        self.t1, self.t2 = self.empty(M, H), self.empty(M, H)

    def __call__(self, prev, f, J):
        torch, H = self.torch, self.H
        pre = torch.addmm(self.addend, prev, self.RT, out=self.pre)
        if self.compiled is not None:
            self.compiled(pre, self.xw_h, prev, self.Rd, f, J)
            return
        zr = pre[:, : 2 * H].sigmoid_()
        z, r, rh = zr[:, :H], zr[:, H:], pre[:, 2 * H :]
        n, d = self.t1, self.t2
        _tanh_(torch.addcmul(self.xw_h, r, rh, out=n))
        torch.sub(prev, n, out=d)  # s_{t-1} - n
        torch.addcmul(n, z, d, out=f)  # h = (1 - z) n + z s_{t-1}
        # J = z + z (1 - z) d R_z + dn r ((1 - r) rh R_r + R_h), dn = (1 - z)(1 - n^2)
        Rz, Rr, Rh = self.Rd
        d.mul_(Rz).addcmul_(d, z, value=-1).add_(1).mul_(z)  # z (1 + (1 - z) d R_z)
        rh_term = J
        torch.mul(rh, Rr, out=rh_term).addcmul_(rh_term, r, value=-1).add_(Rh)  # (1-r) rh R_r + R_h
        rh_term.mul_(r)
        n.mul_(n).sub_(1).addcmul_(n, z, value=-1)  # (n^2 - 1)(1 - z) = -dn
        torch.addcmul(d, n, rh_term, value=-1, out=J)

    @staticmethod
    def elementwise(pre, xw_h, prev, Rd, f, J):
        H = xw_h.shape[-1]
        z = (pre[:, :H]).sigmoid()
        r = (pre[:, H : 2 * H]).sigmoid()
        rh = pre[:, 2 * H :]
        n = (xw_h + r * rh).tanh()
        d = prev - n
        f.copy_(n + z * d)
        dn = (1 - z) * (1 - n * n)
        J.copy_(z + d * z * (1 - z) * Rd[0] + dn * rh * r * (1 - r) * Rd[1] + dn * r * Rd[2])


class _LSTM(_Step):
    def __init__(self, xw, R, Rb, M, compile):
        super().__init__(xw, R, Rb, M, compile)
        self.t1 = self.empty(M, self.H)

    def __call__(self, prev, f, J):
        torch, H = self.torch, self.H
        h_prev, c_prev = prev[:, :H], prev[:, H:]
        pre = torch.addmm(self.xw, h_prev, self.RT, out=self.pre)
        if self.compiled is not None:
            self.compiled(pre, c_prev, self.Rd, f, J)
            return
        pre[:, : 3 * H].sigmoid_()
        i, o, fg = (pre[:, k * H : (k + 1) * H] for k in range(3))
        g = _tanh_(pre[:, 3 * H :])
        c, h, tanh_c = f[:, H:], f[:, :H], self.t1
        torch.mul(fg, c_prev, out=c).addcmul_(i, g)
        _tanh_(torch.mul(c, 2, out=tanh_c), doubled=True)
        torch.mul(o, tanh_c, out=h)
        Ri, Ro, Rf, Rg = self.Rd
        J[:, H:].copy_(fg)  # d c_t / d c_{t-1} = f
        # d c_t / d h_{t-1} (diagonal) = i ((1 - i) g R_i + (1 - g^2) R_g) + (1 - f) f c_prev R_f
        dc = J[:, :H]
        torch.mul(g, Ri, out=dc).addcmul_(dc, i, value=-1)  # (1 - i) g R_i
        g.mul_(g).sub_(1).mul_(Rg)  # g is spent: (g^2 - 1) R_g
        dc.sub_(g).mul_(i)
        g.copy_(fg).mul_(fg).sub_(fg).mul_(c_prev)  # (f^2 - f) c_prev
        dc.addcmul_(g, Rf, value=-1)
        # d h_t / d h_{t-1} = o (1 - o) tanh_c R_o + o (1 - tanh_c^2) dc
        g.copy_(tanh_c).mul_(tanh_c).sub_(1).mul_(dc)  # (tanh_c^2 - 1) dc
        tanh_c.mul_(Ro).addcmul_(tanh_c, o, value=-1).sub_(g)
        dc.copy_(tanh_c).mul_(o)

    @staticmethod
    def elementwise(pre, c_prev, Rd, f, J):
        H = c_prev.shape[-1]
        i, o, fg = (pre[:, k * H : (k + 1) * H].sigmoid() for k in range(3))
        g = pre[:, 3 * H :].tanh()
        c = fg * c_prev + i * g
        tanh_c = c.tanh()
        f[:, :H].copy_(o * tanh_c)
        f[:, H:].copy_(c)
        dc = g * i * (1 - i) * Rd[0] + c_prev * fg * (1 - fg) * Rd[2] + i * (1 - g * g) * Rd[3]
        J[:, :H].copy_(tanh_c * o * (1 - o) * Rd[1] + o * (1 - tanh_c * tanh_c) * dc)
        J[:, H:].copy_(fg)


_STEPS: dict[Cell, type[_RNN | _GRU | _LSTM]] = {Cell.RNN: _RNN, Cell.GRU: _GRU, Cell.LSTM: _LSTM}


@functools.cache
def _compiled(function):
    import torch

    return torch.compile(function, dynamic=True, fullgraph=True)
