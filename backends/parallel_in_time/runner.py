"""What the benchmark engine times: one full parallel-in-time solve, built once, run many.

    run, fetch = make_runner(spec, weights, x, method="quasi-newton", tol=1e-10, max_iter=100,
                             device="cpu", framework="torch", h0=None, c0=None)
    result = run()                        # one solve; CUDA is synchronised inside
    outputs, iterations = fetch(result)   # NumPy Outputs (y, h_n[, c_n]), int or None

`framework` is "torch" (device "cpu" or "cuda") or "numpy" (device "cpu": NumPy; "cuda": CuPy).
Weights, inputs and initial states are moved to the device and cast to spec.dtype before `run`
exists, so the timed region holds the solve only (input projection included). `fetch` raises
ValueError when the result holds no outputs (a layer short of the last did not converge).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends.parallel_in_time.arrays import to_numpy
from backends.parallel_in_time.newton import ParallelResult, check_options, check_spec, solve_model
from harness.model.arrays import Arrays
from harness.model.outputs import Outputs
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec

FRAMEWORKS = ("numpy", "torch")


def make_runner(
    spec: ModelSpec,
    weights,
    x,
    method: str = "quasi-newton",
    tol: float = 1e-10,
    max_iter: int = 100,
    device: str = "cpu",
    framework: str = "torch",
    h0=None,
    c0=None,
) -> tuple[Callable[[], ParallelResult], Callable]:
    check_options(method, tol, max_iter)
    check_spec(spec)
    arrays = {**{k: weights[k] for k in weights}, "x": x, "h0": h0, "c0": c0}
    if framework == "torch":
        from backends.parallel_in_time import torch_newton

        moved = torch_newton.to_device(arrays, device, spec.dtype)

        def run() -> ParallelResult:
            result = torch_newton.solve_model_torch(
                spec, moved, moved["x"], method, tol, max_iter, moved["h0"], moved["c0"]
            )
            torch_newton.synchronize(device)
            return result

    elif framework == "numpy":
        moved = _to_numpy_namespace(arrays, device, spec.dtype)

        def run() -> ParallelResult:
            result = solve_model(
                spec, moved, moved["x"], method, tol, max_iter, moved["h0"], moved["c0"]
            )
            if device == "cuda":
                moved["x"].device.synchronize()
            return result

    else:
        raise ValueError(f"framework = {framework!r}: allowed {', '.join(FRAMEWORKS)}")
    return run, fetch


def fetch(result: ParallelResult) -> tuple[Outputs, int | None]:
    if result.outputs is None:
        raise ValueError(f"no outputs to fetch: {result.reason}")
    out = result.outputs
    return Outputs(to_numpy(out.y), to_numpy(out.h_n), to_numpy(out.c_n)), result.iterations


def _to_numpy_namespace(arrays: Arrays, device: str, dtype: str) -> Arrays:
    xp: Any = np
    if device == "cuda":
        try:
            import cupy

            xp = cupy
        except ImportError:
            raise NotSupported(
                "framework numpy on cuda needs CuPy, which is not installed"
            ) from None
    elif device != "cpu":
        raise NotSupported(f"device {device!r}: allowed cpu, cuda")
    return {
        k: None if a is None else xp.asarray(np.asarray(a), dtype=dtype) for k, a in arrays.items()
    }
