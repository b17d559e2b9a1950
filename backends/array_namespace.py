"""Which array library an array belongs to: numpy, cupy or torch. The NumPy reference runs on
CuPy arrays unchanged, and the parallel-in-time solver on torch tensors too, by asking this."""

from __future__ import annotations

import types
from typing import Any

import numpy as np


def namespace(array: Any) -> types.ModuleType:
    """numpy, cupy or torch: the module whose functions operate on `array`."""
    module = type(array).__module__.split(".")[0]
    if module == "torch":
        import torch

        return torch
    if module == "cupy":
        import cupy

        return cupy
    return np
