"""Compare a backend's tensors with the NumPy reference: count, shape, dtype, then values.

The reference always runs in float64. A float64 backend must agree to rounding (rtol 1e-10).
A float32 backend is held to atol = 1e-5 * max(1, max|reference|) plus rtol = 1e-4: each step
rounds at float32 epsilon (6e-8) in a dozen places and recurrence carries the error forward, so
at the matrix's sizes (H = 16, T = 20) NumPy's own float32 run sits near 1e-6 of the float64
one; 1e-5 is Keras' own anchor for ONNX parity, which covers a fused cuDNN LSTM (~3e-6 from an
unrolled graph). Scaling by the reference's magnitude lets gradients, which sum over T*B
terms, use the same rule.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from harness.json_values import JsonObject
from harness.model.outputs import Outputs


@dataclasses.dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float  # relative to max(1, max |reference|)


TOLERANCES = {
    "float64": Tolerance(rtol=1e-10, atol=1e-12),
    "float32": Tolerance(rtol=1e-4, atol=1e-5),
}


@dataclasses.dataclass(frozen=True)
class Comparison:
    quantity: str  # y, h_n, c_n, head, or grad:<name>
    passed: bool
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    message: str = ""  # why it failed: the tensor, the index and both values
    # max over elements of |got - ref| / (atol + rtol |ref|): the pass rule's own share, <= 1
    # exactly when the values pass; inf when a structural check failed before the values
    share_of_tolerance: float = math.inf
    # with an error budget (harness/parity/budget.py): atol's factor at the last step, the
    # largest error at each step of an output with a time axis, and the first step (0-based)
    # where some element left its budget
    budget_factor: float | None = None
    error_per_step: tuple[float, ...] | None = None
    first_step_over: int | None = None

    def as_dict(self) -> JsonObject:
        return dataclasses.asdict(self)


def compare(
    quantity: str, reference, candidate, dtype: str, scale=None, time_axis: int | None = None
) -> Comparison:
    """Compare in a fixed order: presence, shape, dtype, finiteness, then values. `scale`: a
    factor of atol per element (an error budget grown with the step, broadcast to the
    reference's shape); `time_axis`: the axis whose error per step is recorded."""
    tol = TOLERANCES[dtype]

    def fail(message, max_abs=float("nan"), max_rel=float("nan"), atol=tol.atol, share=math.inf):
        return Comparison(
            quantity, False, max_abs, max_rel, atol, tol.rtol, f"{quantity}: {message}", share
        )

    if candidate is None or reference is None:
        which = "the candidate" if candidate is None else "the reference"
        return fail(f"missing from {which}")
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if candidate.shape != reference.shape:
        return fail(f"shape {candidate.shape} != reference {reference.shape}")
    if candidate.dtype != np.dtype(dtype):
        return fail(f"dtype {candidate.dtype} != expected {dtype}")
    for name, array in (("candidate", candidate), ("reference", reference)):
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            return fail(f"{name} holds {array[index]} at index {index}")
    reference64 = reference.astype(np.float64)
    diff = np.abs(candidate.astype(np.float64) - reference64)
    atol = tol.atol * max(1.0, float(np.abs(reference64).max(initial=0.0)))
    atol_each = atol if scale is None else atol * np.broadcast_to(scale, reference64.shape)
    limit = atol_each + tol.rtol * np.abs(reference64)
    significant = np.abs(reference64) > atol
    max_abs = float(diff.max(initial=0.0))
    max_rel = float((diff[significant] / np.abs(reference64[significant])).max(initial=0.0))
    over = diff > limit
    share = share_of_limit(diff, limit)
    budgeted = _budgeted(scale, time_axis, diff, limit)
    if over.any():
        index = tuple(int(i) for i in np.unravel_index(np.argmax(diff - limit), diff.shape))
        show = (lambda v: repr(float(v))) if dtype == "float64" else (lambda v: f"{float(v):.9g}")
        first = budgeted.get("first_step_over")
        where = f" (first over its budget at step {first})" if first is not None else ""
        return dataclasses.replace(
            fail(
                f"at index {index}: {show(candidate[index])} vs reference "
                f"{show(reference[index])} (|diff| {diff[index]:.3g} > {limit[index]:.3g})" + where,
                max_abs,
                max_rel,
                atol,
                share,
            ),
            **budgeted,
        )
    return Comparison(quantity, True, max_abs, max_rel, atol, tol.rtol, "", share, **budgeted)


def _budgeted(scale, time_axis, diff, limit) -> dict:
    """The budget fields of a comparison made with an atol scale."""
    if scale is None:
        return {}
    scale = np.broadcast_to(scale, diff.shape)
    out: dict = {"budget_factor": float(scale.max(initial=1.0))}
    if time_axis is not None and diff.ndim > time_axis:
        from harness.parity.budget import per_step

        errors, first = per_step(diff, limit, time_axis)
        out.update(error_per_step=tuple(errors), first_step_over=first)
    return out


def share_of_limit(diff: np.ndarray, limit: np.ndarray) -> float:
    """max(diff / limit) with no division by zero: where the limit is 0 (atol 0 and a reference
    of 0), an exact match uses none of it and any error is infinitely over."""
    positive = limit > 0
    over_zero = bool((diff[~positive] > 0).any())
    if over_zero:
        return math.inf
    return float((diff[positive] / limit[positive]).max(initial=0.0))


def compare_all(
    reference: dict,
    candidate: dict,
    dtype: str,
    prefix: str = "",
    budget=None,
    steps: int = 1,
    stepwise: bool = True,
) -> list[Comparison]:
    """Every key of either side, reference order first; a key on one side only fails. With an
    ErrorBudget (harness/parity/budget.py) over `steps` steps: y [T, B, D*H] is judged step by
    step (`stepwise`: False for a model with a backward direction, whose error grows from the
    end), everything else at the last step."""
    keys = list(reference) + [k for k in candidate if k not in reference]
    out = []
    for k in keys:
        ref, got = reference.get(k), candidate.get(k)
        if budget is None or ref is None:
            out.append(compare(prefix + k, ref, got, dtype))
            continue
        from harness.parity.budget import step_scale

        axis = 0 if k == "y" and not prefix and stepwise else None
        scale = step_scale(budget.for_dtype(dtype), np.shape(ref), axis, steps)
        out.append(compare(prefix + k, ref, got, dtype, scale, axis))
    return out


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
