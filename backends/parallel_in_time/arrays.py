"""The few array operations whose spelling differs between NumPy/CuPy and torch.

The solver is written once against an array namespace `xp` (numpy, cupy or torch); everything
else it uses (tanh, matmul, concatenate, zeros_like, abs, isfinite, slicing with a positive
step, in-place += on views) is spelled the same in all three.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from backends.array_namespace import namespace


def eye(xp: types.ModuleType, n: int, like: Any) -> Any:
    if xp.__name__ == "torch":
        return xp.eye(n, dtype=like.dtype, device=like.device)
    return xp.eye(n, dtype=like.dtype)


def zeros(xp: types.ModuleType, shape: tuple[int, ...], like: Any) -> Any:
    if xp.__name__ == "torch":
        return xp.zeros(shape, dtype=like.dtype, device=like.device)
    return xp.zeros(shape, dtype=like.dtype)


def flip_time(array: Any) -> Any:
    """The sequence in reverse order along axis 0 (torch has no negative-step slices)."""
    if namespace(array).__name__ == "torch":
        return array.flip(0)
    return array[::-1]


def max_abs(array: Any) -> float:
    """max |array| as a Python float; NaN when any element is not finite."""
    xp = namespace(array)
    if not bool(xp.isfinite(array).all()):
        return float("nan")
    return float(xp.abs(array).max()) if 0 not in tuple(array.shape) else 0.0


def to_numpy(array: Any) -> np.ndarray | None:
    if array is None:
        return None
    module = type(array).__module__.split(".")[0]
    if module == "torch":
        return array.detach().cpu().numpy()
    if module == "cupy":
        return array.get()
    return np.asarray(array)
