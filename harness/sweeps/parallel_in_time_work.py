"""Work and depth of a parallel-in-time solve (backends/parallel_in_time), counted, not timed.

Work is FLOPs, a multiply-add counted as 2, per layer and direction, for B samples of T steps,
state size N (H; 2H for the LSTM, s = concat(h, c)), G gates:

- the sequential pass: the input projection 2*T*B*G*H*I plus the recurrent products
  2*T*B*G*H*H (harness/model/flops.py; the elementwise gate math, the same in both, is left
  out there and here);
- the solver does the input projection once, then per iteration:
  f at every step (the same recurrent products, 2*T*B*G*H*H); the Jacobians (each of the G
  blocks of R scaled by a vector and accumulated: 2*G*H*H per step and sample dense, 2*G*H for
  the diagonal); b_t = f_t - J_t s_{t-1} (one application per step); and the odd-even scan
  (scan_counts: compositions and applications). Dense ("newton"): a composition is an
  [N x N] product, 2*N^3, an application 2*N^2. Diagonal ("quasi-newton"): N and 2*N.
- work per iteration = its FLOPs / the sequential pass's; work multiplier = (projection +
  iterations x per-iteration FLOPs) / the sequential pass's: how many times the sequential
  pass's work the whole solve does.

Depth is counted in rounds of dependent batched operations, as the solver runs them: per
iteration one to linearise (f and J at every step), one to form b, and the scan's rounds
(2*log2(T) - 1 for T a power of 2 >= 2, see scan_counts); the sequential pass has T rounds, one step
each. T / depth is the most any number of lanes could speed the solve up over the sequential
pass; the work multiplier is the parallelism it must find just to break even.
"""

from __future__ import annotations

from functools import cache

from harness.model.flops import GATES

METHODS = ("newton", "quasi-newton")
ROUNDS_OUTSIDE_SCAN = 2  # linearise (f, J), form b


def state_size(cell: str, hidden: int) -> int:
    return 2 * hidden if cell == "lstm" else hidden


@cache
def scan_counts(steps: int) -> tuple[int, int, int]:
    """(compositions, applications, rounds) of the odd-even scan over `steps` elements: combine
    neighbouring pairs (T//2 applications, and T//2 compositions when the pairs recurse), solve
    the pairs' recurrence, fill in the even steps ((T-1)//2 applications). The pair step and the
    fill-in are one round each."""
    if steps < 1:
        raise ValueError(f"steps = {steps}: allowed >= 1")
    if steps == 1:
        return 0, 0, 0
    pairs = steps // 2
    if steps == 2:
        return 0, 1, 1
    compositions, applications, rounds = scan_counts(pairs)
    return compositions + pairs, applications + pairs + (steps - 1) // 2, rounds + 2


def sequential_flops(cell: str, batch: int, steps: int, input_size: int, hidden: int) -> int:
    return 2 * steps * batch * GATES[cell] * hidden * (input_size + hidden)


def projection_flops(cell: str, batch: int, steps: int, input_size: int, hidden: int) -> int:
    return 2 * steps * batch * GATES[cell] * hidden * input_size


def iteration_flops(method: str, cell: str, batch: int, steps: int, hidden: int) -> int:
    """FLOPs of one Newton ("newton", dense) or quasi-Newton (diagonal) iteration."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: allowed {', '.join(METHODS)}")
    G, H, N = GATES[cell], hidden, state_size(cell, hidden)
    dense = method == "newton"
    compose, apply = (2 * N**3, 2 * N**2) if dense else (N, 2 * N)
    jacobian = 2 * G * H * H if dense else 2 * G * H
    compositions, applications, _ = scan_counts(steps)
    per_sample = (
        steps * (2 * G * H * H + jacobian + apply) + compositions * compose + applications * apply
    )
    return batch * per_sample


def depth_per_iteration(steps: int) -> int:
    return ROUNDS_OUTSIDE_SCAN + scan_counts(steps)[2]


def work(
    method: str,
    cell: str,
    batch: int,
    steps: int,
    input_size: int,
    hidden: int,
    iterations: int | None,
) -> dict[str, float | int | None]:
    """Work per iteration and in all (relative to the sequential pass) and depth, for one layer
    and direction; the totals are None when the solve did not converge."""
    sequential = sequential_flops(cell, batch, steps, input_size, hidden)
    per_iteration = iteration_flops(method, cell, batch, steps, hidden)
    rounds = depth_per_iteration(steps)
    total = None
    if iterations is not None:
        total = projection_flops(cell, batch, steps, input_size, hidden)
        total += iterations * per_iteration
    return {
        "work_per_iteration": per_iteration / sequential,
        "work_multiplier": None if total is None else total / sequential,
        "depth_per_iteration": rounds,
        "depth": None if iterations is None else iterations * rounds,
        "sequential_depth": steps,
    }
