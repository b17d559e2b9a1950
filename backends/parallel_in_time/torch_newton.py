"""The solver on torch tensors, CPU or CUDA: the array-namespace code of newton.py with torch as
its namespace (the scan's rounds are batched torch.matmul / elementwise kernels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.parallel_in_time.newton import ParallelResult, solve_model
from harness.model.arrays import Arrays
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec


def device_reason(device: str) -> str | None:
    """None when torch can run on `device` here, else why not."""
    import torch

    if device == "cpu":
        return None
    if device.startswith("cuda") and not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    if not device.startswith("cuda"):
        return f"device {device!r}: allowed cpu, cuda"
    return None


def to_device(arrays: Mapping[str, Any], device: str, dtype: str) -> Arrays:
    import torch

    reason = device_reason(device)
    if reason:
        raise NotSupported(reason)
    return {
        name: None if a is None else torch.from_numpy(np.array(a, dtype=dtype)).to(device)
        for name, a in arrays.items()
    }


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def solve_model_torch(
    spec: ModelSpec,
    params: Mapping[str, Any],
    x,
    method: str,
    tol: float,
    max_iter: int,
    h0=None,
    c0=None,
) -> ParallelResult:
    """solve_model on torch tensors, with autograd off. Denormals flush to zero while it runs:
    the scan's products of many contracting Jacobians underflow (in float32 after ~100 steps),
    and denormal arithmetic made a CPU iteration ~1.6x slower (measured, GRU H=256 T=1024);
    values below ~1e-38 of the states' scale change nothing."""
    import torch

    flushed = torch.set_flush_denormal(True)
    try:
        with torch.no_grad():
            return solve_model(spec, params, x, method, tol, max_iter, h0, c0)
    finally:
        if flushed:
            torch.set_flush_denormal(False)
