"""Newton's method in time: solve s_t = f(s_{t-1}, x_t) for every t at once.

Each iteration linearises every step at the current guess (J_t = df/ds at s_{t-1}^(k)), sets
b_t = f_t - J_t s_{t-1}^(k) and solves s_t = J_t s_{t-1} + b_t by one associative scan. "newton"
uses the dense Jacobian (exact Newton, DEER); "quasi-newton" its diagonal (quasi-DEER). After k
iterations the first k states are exact, so T iterations always suffice in exact arithmetic; how
many are needed in practice depends on the recurrence's largest Lyapunov exponent.

The guess starts at s^(0) = 0 for every t; `iterations` counts updates from it. The run stops
when the max-abs change between successive iterates is <= tol (converged), when an iterate holds
a non-finite value, or after max_iter updates (both: not converged, with the last residual).
Residuals are these max-abs changes, one per iteration.

Array-namespace code: numpy, cupy and torch arrays all run through it (torch_newton.py wraps it);
The quasi-Newton iteration has fused forms with the same results (quasi_solvers.py: a C kernel on
the CPU, torch's kernels on a GPU).
A multi-layer model is solved layer by layer; a reverse direction is the same recurrence on the
time-reversed layer input. A layer that fails to converge ends the run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.parallel_in_time.arrays import flip_time, max_abs, namespace, zeros
from backends.parallel_in_time.jacobians import input_projection, step
from backends.parallel_in_time.scan import apply_linear, linear_scan
from harness.json_values import JsonObject
from harness.model.outputs import Outputs
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, ModelSpec

METHODS = {"newton": "dense", "quasi-newton": "diagonal"}
DENSE_LIMIT_BYTES = 4 << 30  # dense Jacobians and their products; beyond it use quasi-newton
DEADLINE = "deadline passed"  # iterate's reason where its deadline ended it


@dataclasses.dataclass(frozen=True)
class SolveRecord:
    """One (layer, direction) recurrence."""

    layer: int
    direction: str
    converged: bool
    iterations: int | None
    residuals: tuple[float, ...]
    reason: str | None = None

    def as_dict(self) -> JsonObject:
        return {**dataclasses.asdict(self), "residuals": list(self.residuals)}


@dataclasses.dataclass(frozen=True)
class ParallelResult:
    """A whole model solved in parallel over time. `iterations` is the largest count over the
    (layer, direction) solves, None unless all converged; `residuals` are the first solve's
    (layer 0, forward); `outputs` is None only when a layer short of the last failed."""

    converged: bool
    iterations: int | None
    residuals: tuple[float, ...]
    outputs: Outputs | None
    method: str
    tol: float
    max_iter: int
    reason: str | None = None
    solves: tuple[SolveRecord, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method = {self.method!r}: allowed {', '.join(METHODS)}")
        if not self.tol >= 0:
            raise ValueError(f"tol = {self.tol!r}: allowed a number >= 0")
        if self.max_iter < 1:
            raise ValueError(f"max_iter = {self.max_iter!r}: allowed an integer >= 1")
        if self.converged != (self.iterations is not None) or self.converged == bool(self.reason):
            raise ValueError(
                f"converged = {self.converged} needs iterations set and no reason, or the "
                f"reverse; got iterations = {self.iterations!r}, reason = {self.reason!r}"
            )


def check_options(method: str, tol: float, max_iter: int) -> None:
    ParallelResult(True, 1, (), None, method, tol, max_iter)


def check_spec(spec: ModelSpec) -> None:
    """The step functions and their Jacobians are the canonical cells': a variant (ONNX's
    linear_before_reset=0 GRU, peepholes, input_forget, clip) is refused by name."""
    if spec.variants:
        raise NotSupported(
            f"parallel-in-time solves the canonical cells; this model has "
            f"{spec.describe_variants()}"
        )


def solve_recurrence(cell: Cell, xw, R, Rb, s0, method: str, tol: float, max_iter: int):
    """States [T, B, N] of one direction of one layer, and (converged, iterations, residuals,
    reason). xw [T, B, G*H] from input_projection; s0 [B, N] the initial state."""
    xp = namespace(xw)
    mode = METHODS[method]
    dense = mode == "dense"
    T, B, N = xw.shape[0], xw.shape[1], s0.shape[-1]
    _check_dense_memory(dense, T, B, N, xw.dtype.itemsize)
    if mode == "diagonal":  # the same iteration, fused (quasi_solvers.py)
        from backends.parallel_in_time import quasi_solvers

        solver = quasi_solvers.make_solver(cell, xw, R, Rb, s0)
        if solver is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                return quasi_solvers.iterate(solver, tol, max_iter)
    S = zeros(xp, (T, B, N), xw)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported, not warned
        return iterate(cell, xw, R, Rb, s0, S, mode, tol, max_iter)


def iterate(cell: Cell, xw, R, Rb, s0, S, mode: str, tol: float, max_iter: int, deadline=None):
    """Iterations from the guess S; deadline (time.perf_counter()), where given, ends the run
    after the iteration that passes it (not converged, its reason says so)."""
    xp, dense = namespace(xw), mode == "dense"
    residuals: list[float] = []
    for k in range(1, max_iter + 1):
        previous = xp.concatenate([s0[None], S[:-1]])
        f, J = step(cell, xw, R, Rb, previous, mode)
        b = f - apply_linear(J, previous, dense)
        b[0] = f[0]  # s_0 is the given initial state: the first step is exact
        S_next = linear_scan(J, b, dense)
        change = max_abs(S_next - S)
        residuals.append(change)
        S = S_next
        if change != change:
            return S, (False, None, residuals, f"a non-finite value at iteration {k}")
        if change <= tol:
            return S, (True, k, residuals, None)
        if deadline is not None and time.perf_counter() >= deadline:
            return S, (False, None, residuals, f"{DEADLINE} after iteration {k}")
    reason = f"reached max_iter = {max_iter} with residual {change:.3g} > tol = {tol:g}"
    return S, (False, None, residuals, reason)


def _check_dense_memory(dense: bool, T: int, B: int, N: int, itemsize: int) -> None:
    need = 3 * T * B * N * N * itemsize
    if dense and need > DENSE_LIMIT_BYTES:
        raise NotSupported(
            f"exact Newton needs ~{need / 2**30:.1f} GiB of dense Jacobians (T={T}, B={B}, "
            f"state size {N}); the limit is {DENSE_LIMIT_BYTES / 2**30:.0f} GiB: use quasi-newton"
        )


def initial_states(spec: ModelSpec, x, h0=None, c0=None):
    """[L*D, B, N] initial states s = h (or concat(h, c) for the LSTM), zeros by default."""
    xp = namespace(x)
    LD, B, H = spec.num_layers * spec.num_directions, x.shape[1], spec.hidden_size
    parts = []
    for name, state in (("h0", h0), ("c0", c0))[: 2 if spec.cell is Cell.LSTM else 1]:
        if state is None:
            state = zeros(xp, (LD, B, H), x)
        if tuple(state.shape) != (LD, B, H):
            raise ValueError(
                f"{name} has shape {tuple(state.shape)}: expected [L*D, B, H] = {(LD, B, H)}"
            )
        parts.append(state)
    return xp.concatenate(parts, axis=-1)


def solve_model(
    spec: ModelSpec,
    params: Mapping[str, Any],
    x,
    method: str = "quasi-newton",
    tol: float = 1e-10,
    max_iter: int = 100,
    h0=None,
    c0=None,
) -> ParallelResult:
    """The whole model; x [T, B, I] ([B, T, I] when spec.batch_first), params canonical arrays
    in x's namespace and dtype."""
    check_options(method, tol, max_iter)
    check_spec(spec)
    x = time_major(spec, x)
    layers, solves = solve_layers(
        spec, params, x, initial_states(spec, x, h0, c0), method, tol, max_iter
    )
    if len(layers) < spec.num_layers:
        return _result(None, solves, method, tol, max_iter)
    last_input, last_states = layers[-1]
    H, xp = spec.hidden_size, namespace(x)
    y = xp.concatenate([in_time_order(S[..., :H], d) for d, S in enumerate(last_states)], -1)
    finals = [S[-1] for _, states in layers for S in states]
    return _result(_outputs(spec, y, finals), solves, method, tol, max_iter)


def solve_layers(spec: ModelSpec, params, x, s0, method: str, tol: float, max_iter: int):
    """[(layer input [T, B, I_l], [states [T, B, N] per direction, in processing order])] up to
    the first layer that fails, and the SolveRecords. x time-major; s0 [L*D, B, N]."""
    H, D, xp = spec.hidden_size, spec.num_directions, namespace(x)
    layer_input, layers, solves = x, [], []
    project = input_projection
    if method == "quasi-newton":  # on the fused kernel's pool where its iteration runs there
        from backends.parallel_in_time import fused_quasi

        project = fused_quasi.input_projection
    for layer in range(spec.num_layers):
        W, R, Wb, Rb = (params[f"l{layer}.{k}"] for k in ("W", "R", "Wb", "Rb"))
        states = []
        for d, direction in enumerate(("forward", "reverse")[:D]):
            xw = project(spec.cell, in_time_order(layer_input, d), W[d], Wb[d], Rb[d])
            S, (ok, count, residuals, reason) = solve_recurrence(
                spec.cell, xw, R[d], Rb[d], s0[layer * D + d], method, tol, max_iter
            )
            solves.append(SolveRecord(layer, direction, ok, count, tuple(residuals), reason))
            states.append(S)
        layers.append((layer_input, states))
        if not all(s.converged for s in solves):
            break
        layer_input = xp.concatenate(
            [in_time_order(S[..., :H], d) for d, S in enumerate(states)], axis=-1
        )
    return layers, solves


def in_time_order(sequence, direction: int):
    """A reverse direction's processing order is the time-reversed sequence (and back)."""
    return sequence if direction == 0 else flip_time(sequence)


def time_major(spec: ModelSpec, x):
    if not spec.batch_first:
        return x
    return x.transpose(1, 0) if namespace(x).__name__ == "torch" else x.transpose(1, 0, 2)


def _outputs(spec: ModelSpec, y, finals) -> Outputs:
    xp, H = namespace(y), spec.hidden_size
    states = xp.stack(finals)
    y = time_major(spec, y)  # the same swap of axes 0 and 1 back
    c_n = states[..., H:] if spec.cell is Cell.LSTM else None
    return Outputs(y, states[..., :H], c_n)


def _result(outputs, solves, method, tol, max_iter) -> ParallelResult:
    failed = [s for s in solves if not s.converged]
    reason = None
    if failed:
        first = failed[0]
        reason = f"layer {first.layer} {first.direction}: {first.reason}"
    iterations = None if failed else max(s.iterations for s in solves)
    return ParallelResult(
        not failed,
        iterations,
        solves[0].residuals,
        outputs,
        method,
        tol,
        max_iter,
        reason,
        tuple(solves),
    )
