"""Which quasi-Newton iteration runs, and its loop: the fused C kernel on the CPU
(fused_quasi.py, NumPy arrays and torch CPU tensors), else torch's fused kernels for torch
tensors on a GPU or where the C kernel cannot be built (torch_quasi.py), else None: newton.py's
array-namespace iteration (CuPy, or NumPy without the C kernel). All three give the same
iterates, to the last bits of the dtype, and stop by the same rule."""

from __future__ import annotations

import math

from backends.parallel_in_time import fused_quasi, torch_quasi
from backends.parallel_in_time.arrays import namespace
from harness.model.spec import Cell

GENERIC = "array-namespace iteration (newton.iterate)"


def make_solver(cell: Cell, xw, R, Rb, s0):
    """The fastest solver for these arrays, or None for newton.iterate."""
    if fused_quasi.unavailable(xw) is None:
        return fused_quasi.FusedQuasiNewton(cell, xw, R, Rb, s0)
    if namespace(xw).__name__ == "torch":
        return torch_quasi.QuasiNewton(cell, xw, R, Rb, s0)
    return None


def describe(method: str, framework: str, device: str) -> str:
    """Which iteration a solve of `method` runs for a framework and device, in one line (and
    why not the fused C kernel, where it is not)."""
    if method != "quasi-newton":
        return f"{GENERIC}, dense Jacobians"
    if device == "cpu" and framework in ("numpy", "torch"):
        kernels = fused_quasi.load()
        if not isinstance(kernels, str):
            if framework == "numpy":  # fused_quasi._threads
                return (
                    f"{kernels.describe()}; on NumPy arrays, where the BLAS has several threads,"
                    " its own product and thread pool"
                )
            return kernels.describe()
        fallback = torch_quasi.DESCRIPTION if framework == "torch" else GENERIC
        return f"{fallback}: {kernels}"
    return torch_quasi.DESCRIPTION if framework == "torch" else GENERIC


def iterate(solver, tol: float, max_iter: int):
    """newton.iterate's loop on a solver: (states [T, B, N], (converged, iterations, residuals,
    reason))."""
    residuals: list[float] = []
    change = math.nan
    for k in range(1, max_iter + 1):
        change = solver.iteration()
        residuals.append(change)
        if change != change:
            return solver.states(), (False, None, residuals, f"a non-finite value at iteration {k}")
        if change <= tol:
            return solver.states(), (True, k, residuals, None)
    reason = f"reached max_iter = {max_iter} with residual {change:.3g} > tol = {tol:g}"
    return solver.states(), (False, None, residuals, reason)
