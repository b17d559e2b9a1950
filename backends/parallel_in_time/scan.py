"""The linear recurrence s_t = A_t s_{t-1} + b_t for all t at once, by an associative scan.

Elements e_t = (A_t, b_t) compose as (A2, b2) o (A1, b1) = (A2 A1, A2 b1 + b2). The scan is the
work-efficient odd-even form: combine neighbouring pairs (T/2 compositions), solve the half-length
recurrence of the pairs recursively, then fill in the even steps from their odd neighbours. That is
about 2T compositions in 2 log2(T) rounds, each round one batched product over its steps (dense A:
matrix products; diagonal A: elementwise), so no step of Python runs per time step.

A is [T, ..., N, N] (dense) or [T, ..., N] (diagonal); b is [T, ..., N]. The initial state must
already be folded into b_0 (b_0 + A_0 s_0), so A_0 is never used.
"""

from __future__ import annotations

from typing import Any

from backends.parallel_in_time.arrays import namespace


def apply_linear(A, v, dense: bool):
    return (A @ v[..., None])[..., 0] if dense else A * v


def compose_linear(A2, A1, dense: bool):
    return A2 @ A1 if dense else A2 * A1


def linear_scan(A: Any, b: Any, dense: bool) -> Any:
    """s [T, ..., N]. Overwrites b (the caller's, or a view of it) with the states."""
    T = b.shape[0]
    if T == 1:
        return b
    pairs = T // 2
    odd = b[1::2]  # steps 1, 3, 5, ...: each becomes its pair's combined element
    odd += apply_linear(A[1::2], b[0 : 2 * pairs : 2], dense)
    if T > 2:
        linear_scan(compose_linear(A[1::2], A[0 : 2 * pairs : 2], dense), odd, dense)
        evens = b[2::2]  # steps 2, 4, ...: one step on from the solved odd step before each
        evens += apply_linear(A[2::2], b[1 : T - 1 : 2], dense)
    return b


def reverse_scan_transposed(J: Any, g: Any, dense: bool) -> Any:
    """lam_t = g_t + J_{t+1}^T lam_{t+1} with lam_{T-1} = g_{T-1}: the adjoint recurrence, solved
    by the same scan in reversed time (NumPy or CuPy: it reverses with negative-step views)."""
    xp = namespace(g)
    A = J.swapaxes(-1, -2) if dense else J
    in_reversed_time = xp.concatenate([A[:1], A[1:][::-1]])  # element 0's A is never used
    return linear_scan(in_reversed_time, g[::-1].copy(), dense)[::-1]
