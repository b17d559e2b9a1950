"""The sequential reference a parallel-in-time result is held to: numpy_ref's step-by-step run in
float64 on the same (dtype-rounded) weights and inputs (compared at the parity tolerance of the
result's dtype by harness.parity.checks.compare_with_sequential)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backends import numpy_ref
from harness.model.outputs import Outputs
from harness.model.spec import Cell, ModelSpec


def sequential_reference(
    spec: ModelSpec, params: Mapping[str, Any], x, h0=None, c0=None
) -> Outputs:
    spec64 = spec.replace(dtype="float64", head=None)
    params64 = {k: np.asarray(v, np.float64) for k, v in params.items() if not k.startswith("head")}
    as64 = {
        name: None if a is None else np.asarray(a, np.float64)
        for name, a in (("x", x), ("h0", h0), ("c0", c0))
    }
    c0 = as64["c0"] if spec.cell is Cell.LSTM else None
    return numpy_ref.forward(spec64, params64, as64["x"], h0=as64["h0"], c0=c0)
