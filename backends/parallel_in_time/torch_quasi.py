"""The quasi-Newton (quasi-DEER) iteration on torch tensors, fused: the same method, stopping rule
and results as newton.iterate with mode "diagonal", written for torch's kernels. It runs on a GPU,
and on the CPU only where the C kernel (fused_quasi.py) cannot be built.

Per iteration the generic array-namespace path runs one product and ~30 elementwise passes, each
allocating a [T, B, N] tensor (the concatenated previous states, every gate term, J * s, b, the
scan's compositions, the change). Here every buffer, and every view of one, is made once per
solve: at small H an iteration's cost is its passes over memory and the Python that issues
them, not its product, so each pass saved and each view not remade counts.

- the states live in two [T+1, B, N] buffers whose row 0 is s0, so "the state before each step"
  is the leading [T, B, N] slice (no concatenation); each iteration writes the new iterate into
  the other buffer and the change is their difference. Every view an iteration needs (gate
  slices, the scan's strided halves at every level) is made once for each of the two ways the
  buffers alternate (Plan);
- the pre-activations come from one addmm into a preallocated [T*B, G*H] buffer whose addend
  (x W + biases, and for the GRU its recurrent bias R_b,h) is built once per solve;
- f, the diagonal Jacobian and b = f - J s_{t-1} are computed together from the same
  pre-activations with in-place / out= kernels (addcmul, sigmoid_), writing f straight into the
  buffer the scan then solves in place. tanh is 2 sigmoid(2a) - 1 (torch's CPU sigmoid is ~5x
  faster than its tanh), with the doubling folded into the addend or the addcmul that makes
  a, and 1 - tanh(a)^2 taken as 4 s (1 - s) from s = sigmoid(2a) before it becomes tanh;
- the scan composes the Jacobians in place (J is rebuilt every iteration) with addcmul_, its
  levels unrolled into a list of views.

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
DESCRIPTION = "torch fused kernels (torch_quasi.py)"


def compile_requested() -> bool:
    return os.environ.get(COMPILE_ENV, "") not in ("", "0")


class Plan:
    """The views one iteration reads and writes when `current` holds the iterate and the new
    one goes to `following`."""

    def __init__(self, current, following, J):
        T, B, N = J.shape
        self.current, self.following = current, following
        previous, b = current[:-1], following[1:]
        self.previous2d, self.b2d = previous.view(T * B, N), b.view(T * B, N)
        self.J2d = J.view(T * B, N)
        self.rest = (b[1:], J[1:], previous[1:])  # b_t -= J_t s_{t-1} for t >= 1
        self.change = (b, current[1:])
        self.scan = scan_plan(J, b)


def scan_plan(A, b) -> tuple[list, list]:
    """The views of diagonal_scan_'s levels, (down, up): down, per level, (odd b, odd A, the
    even b before each, the even A before each or None at the last level); up, per level from
    the deepest, (even b from step 2, their A, the odd b before each)."""
    down, up = [], []
    while b.shape[0] > 1:
        T = b.shape[0]
        pairs = T // 2
        odd, A_odd = b[1::2], A[1::2]
        down.append((odd, A_odd, b[0 : 2 * pairs : 2], A[0 : 2 * pairs : 2] if T > 2 else None))
        if T > 2:
            up.append((b[2::2], A[2::2], b[1 : T - 1 : 2]))
        A, b = A_odd, odd
    return down, up[::-1]


def run_scan(plan: tuple[list, list]) -> None:
    """scan.linear_scan for diagonal A, in place on b (the states) and on A (A's odd steps become
    the pairs' compositions, so A is clobbered): the same odd-even rounds and order of
    operations; the even steps' A, all the up pass reads, are never overwritten before it reads
    them."""
    down, up = plan
    for odd, A_odd, b_even, A_even in down:
        odd.addcmul_(A_odd, b_even)
        if A_even is not None:
            A_odd.mul_(A_even)
    for evens, A_evens, b_odds in up:
        evens.addcmul_(A_evens, b_odds)


def diagonal_scan_(A, b) -> None:
    """run_scan on views made now (a one-off scan)."""
    run_scan(scan_plan(A, b))


class QuasiNewton:
    """One recurrence's buffers, allocated once; `iteration()` does one update of the iterate
    (starting from s^(0) = 0) and returns the max-abs change (NaN if anything is not finite)."""

    def __init__(self, cell: Cell, xw, R, Rb, s0, compile: bool | None = None):
        import torch

        if compile is None:
            compile = compile_requested()
        T, B, N = xw.shape[0], xw.shape[1], s0.shape[-1]
        self.T, self.B, self.N = T, B, N
        buffers = [torch.empty((T + 1, B, N), dtype=xw.dtype, device=xw.device) for _ in range(2)]
        for ext in buffers:
            ext[0] = s0  # row 0: the given initial state, before step 0
        buffers[0][1:].zero_()
        self.J = torch.empty((T, B, N), dtype=xw.dtype, device=xw.device)
        self.plans = (Plan(buffers[0], buffers[1], self.J), Plan(buffers[1], buffers[0], self.J))
        self.parity = 0
        self.step = _STEPS[cell](xw.contiguous(), R, Rb, T * B, compile, self.plans)

    def iteration(self) -> float:
        plan = self.plans[self.parity]
        self.step(self.parity)
        b_rest, J_rest, previous_rest = plan.rest
        # b_t = f_t - J_t s_{t-1} for t >= 1; b_0 = f_0: s_0 is given, the first step is exact
        b_rest.addcmul_(J_rest, previous_rest, value=-1)
        run_scan(plan.scan)
        change = _max_abs_difference(*plan.change, out=self.J)
        self.parity = 1 - self.parity
        return change

    def states(self):
        """The current iterate, [T, B, N] (a view of the solver's buffer)."""
        return self.plans[self.parity].current[1:]


def _max_abs_difference(new, old, out) -> float:
    """max |new - old| as a float, NaN when any element is not finite (arrays.max_abs). `old` is
    the previous iterate, finite or the run would have stopped, so a finite difference means a
    finite `new`."""
    import torch

    low, high = torch.aminmax(torch.sub(new, old, out=out))  # one pass; NaN propagates
    change = max(-float(low), float(high))
    return change if math.isfinite(change) else float("nan")


# Each cell: built once per solve with its preallocated buffers and the plans' views; called
# with the plan's parity, it writes f into that plan's b [M, N] (M = T*B) and the diagonal of J
# into J [M, N].


class _Step:
    def __init__(self, xw, R, Rb, M: int, compile: bool, plans):
        import torch

        self.torch = torch
        H = R.shape[1]
        self.H, self.M = H, M
        self.RT = R.T  # addmm reads the transposed view; no copy
        # diag(R_g) for each gate block g
        self.Rd = [R[g * H : (g + 1) * H].diagonal() for g in range(R.shape[0] // H)]
        self.xw = xw.view(M, xw.shape[-1])
        self.pre = torch.empty((M, R.shape[0]), dtype=xw.dtype, device=xw.device)
        self.gates = [self.pre[:, g * H : (g + 1) * H] for g in range(R.shape[0] // H)]
        self.io = [(plan.previous2d, plan.b2d, plan.J2d) for plan in plans]
        self.compiled = _compiled(type(self).elementwise) if compile else None  # type: ignore[attr-defined]

    def empty(self, *shape):
        return self.torch.empty(shape, dtype=self.pre.dtype, device=self.pre.device)


class _RNN(_Step):
    def __init__(self, xw, R, Rb, M, compile, plans):
        super().__init__(xw, R, Rb, M, compile, plans)
        self.xw2 = 2 * self.xw  # a = xw + h R^T, made doubled: 2a
        self.Rd4 = 4 * self.Rd[0]

    def __call__(self, parity):
        torch = self.torch
        prev, f, J = self.io[parity]
        if self.compiled is not None:
            torch.addmm(self.xw, prev, self.RT, out=self.pre)
            self.compiled(self.pre, self.Rd[0], f, J)
            return
        s = torch.addmm(self.xw2, prev, self.RT, alpha=2, out=f).sigmoid_()  # sigmoid(2a)
        torch.addcmul(s, s, s, value=-1, out=J).mul_(self.Rd4)  # (1 - h^2) R_d = 4 s (1 - s) R_d
        s.mul_(2).sub_(1)  # h = tanh(a) = 2 s - 1

    @staticmethod
    def elementwise(pre, Rd, f, J):
        h = pre.tanh()
        f.copy_(h)
        J.copy_((1 - h * h) * Rd)


class _GRU(_Step):
    def __init__(self, xw, R, Rb, M, compile, plans):
        super().__init__(xw, R, Rb, M, compile, plans)
        H = self.H
        # the addmm's addend: x W + biases for z and r; the recurrent bias R_b,h for the
        # candidate, whose recurrent part the reset gate scales (xw_h is added after)
        self.addend = self.torch.cat(
            [self.xw[:, : 2 * H], Rb[2 * H :].expand(M, H)], dim=1
        ).contiguous()
        self.xw_h = self.xw[:, 2 * H :]
        self.xw_h2 = (2 * self.xw_h).contiguous()
        self.zr = self.pre[:, : 2 * H]
        self.t1, self.t2, self.t3 = self.empty(M, H), self.empty(M, H), self.empty(M, H)

    def __call__(self, parity):
        torch = self.torch
        prev, f, J = self.io[parity]
        torch.addmm(self.addend, prev, self.RT, out=self.pre)
        z, r, rh = self.gates
        if self.compiled is not None:
            self.compiled(self.pre, self.xw_h, prev, self.Rd, f, J)
            return
        self.zr.sigmoid_()
        s, ds, d = self.t1, self.t2, self.t3
        torch.addcmul(self.xw_h2, r, rh, value=2, out=s).sigmoid_()  # s = sigmoid(2a)
        torch.addcmul(s, s, s, value=-1, out=ds)  # s (1 - s): 1 - n^2 = 4 s (1 - s)
        n = s.mul_(2).sub_(1)  # n = tanh(a)
        torch.sub(prev, n, out=d)  # d = s_{t-1} - n
        torch.addcmul(n, z, d, out=f)  # h = (1 - z) n + z s_{t-1}
        # J = z + z (1 - z) d R_z + dn r ((1 - r) rh R_r + R_h), dn = (1 - z)(1 - n^2)
        Rz, Rr, Rh = self.Rd
        zz = torch.addcmul(z, z, z, value=-1, out=n)  # z (1 - z); n is spent
        torch.addcmul(z, zz, d.mul_(Rz), out=J)
        rterm = torch.mul(rh, Rr, out=d)  # d is spent
        rterm.addcmul_(rterm, r, value=-1).add_(Rh).mul_(r)  # r ((1 - r) rh R_r + R_h)
        ds.addcmul_(ds, z, value=-1)  # s (1 - s)(1 - z) = dn / 4
        J.addcmul_(ds, rterm, value=4)

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
    def __init__(self, xw, R, Rb, M, compile, plans):
        super().__init__(xw, R, Rb, M, compile, plans)
        H = self.H
        self.t1, self.t2 = self.empty(M, H), self.empty(M, H)
        # the cell gate's pre-activation made doubled, 2a (tanh(a) = 2 sigmoid(2a) - 1), by its
        # rows of R and its columns of the addend: one sigmoid then serves all four gates
        R2 = R.clone()
        R2[3 * H :] *= 2
        self.RT2 = R2.T
        self.xw2 = self.xw.clone()
        self.xw2[:, 3 * H :] *= 2
        self.halves = [
            (prev[:, :H], prev[:, H:], f[:, :H], f[:, H:], J[:, :H], J[:, H:])
            for prev, f, J in self.io
        ]

    def __call__(self, parity):
        torch = self.torch
        h_prev, c_prev, h, c, dh, dc_prev = self.halves[parity]
        if self.compiled is not None:
            pre = torch.addmm(self.xw, h_prev, self.RT, out=self.pre)
            self.compiled(pre, c_prev, self.Rd, self.io[parity][1], self.io[parity][2])
            return
        torch.addmm(self.xw2, h_prev, self.RT2, out=self.pre).sigmoid_()
        i, o, fg, g = self.gates  # g holds sigmoid(2 a_g) until it becomes tanh(a_g)
        Ri, Ro, Rf, Rg = self.Rd
        u, sc = self.t1, self.t2
        torch.addcmul(g, g, g, value=-1, out=u)  # s (1 - s): 1 - g^2 = 4 s (1 - s)
        g.mul_(2).sub_(1)
        torch.mul(fg, c_prev, out=c).addcmul_(i, g)  # c = f c_prev + i g
        torch.mul(c, 2, out=sc).sigmoid_()  # sigmoid(2c): tanh(c) = 2 sc - 1
        # dc = d c / d h_prev (diagonal) = i (1 - i) g R_i + (1 - f) f c_prev R_f + i (1 - g^2) R_g,
        # built in dh
        torch.addcmul(i, i, i, value=-1, out=dh).mul_(g).mul_(Ri)
        dh.addcmul_(u.mul_(i), Rg, value=4)
        torch.addcmul(fg, fg, fg, value=-1, out=dc_prev).mul_(c_prev)
        dh.addcmul_(dc_prev, Rf)
        dc_prev.copy_(fg)  # d c_t / d c_{t-1} = f
        # d h_t / d h_{t-1} = o (1 - o) tanh_c R_o + o (1 - tanh_c^2) dc
        dh.mul_(torch.addcmul(sc, sc, sc, value=-1, out=u))  # dc sc (1 - sc)
        tanh_c = sc.mul_(2).sub_(1)
        torch.mul(o, tanh_c, out=h)
        term = torch.addcmul(o, o, o, value=-1, out=u).mul_(tanh_c).mul_(Ro)
        term.addcmul_(dh, o, value=4)
        dh.copy_(term)

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
