"""The sequential reference a parallel-in-time result is held to: numpy_ref's step-by-step run in
float64 on the same (dtype-rounded) weights and inputs, compared at the parity tolerance of the
result's dtype (harness.parity.checks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backends import numpy_ref
from harness.model.outputs import Outputs
from harness.model.spec import Cell, ModelSpec
from harness.parity.checks import Comparison, compare


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


def compare_with_sequential(
    outputs: Outputs, reference: Outputs, dtype: str
) -> tuple[float, list[Comparison]]:
    """(max |outputs - reference| over y, h_n, c_n (NaN if any is not finite), comparisons)."""
    candidate = outputs.as_dict()
    comparisons = [compare(k, v, candidate.get(k), dtype) for k, v in reference.as_dict().items()]
    errors = [
        np.abs(np.asarray(candidate[k], np.float64) - v).max()
        for k, v in reference.as_dict().items()
        if k in candidate and np.shape(candidate[k]) == v.shape
    ]
    worst = float(max(errors)) if errors else float("nan")
    return worst, comparisons
