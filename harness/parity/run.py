"""Running the parity matrix: each backend's outputs and gradients against the NumPy float64
reference, in a fixed order of checks (harness.parity.checks)."""

from __future__ import annotations

import dataclasses
import sys
import traceback

from harness import registry
from harness.json_values import JsonObject
from harness.model.errors import describe_error
from harness.model.protocol import NotSupported
from harness.parity.cases import ParityCase, case_data, cotangents_for
from harness.parity.checks import Comparison, compare_all


@dataclasses.dataclass
class BackendResult:
    backend: str
    case: str  # the case's name (ParityCase.id): a label, never read back into fields
    status: str  # passed | failed | skipped | error
    reason: str = ""
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    audit: dict | None = None  # the export-form audit, for ONNX backends
    cell: str = ""
    dtype: str = ""
    layers: int = 0
    directions: int = 0

    @classmethod
    def of(cls, backend: str, spec, case: str, status: str, reason="", comparisons=()):
        """A result for a model of `spec` (its cell, dtype, layers, directions recorded)."""
        return cls(
            backend,
            case,
            status,
            reason,
            list(comparisons),
            None,
            getattr(spec.cell, "value", spec.cell),
            spec.dtype,
            spec.num_layers,
            spec.num_directions,
        )

    def as_dict(self) -> JsonObject:
        out = dataclasses.asdict(self)
        out["comparisons"] = [c.as_dict() for c in self.comparisons]
        return out


def reference_results(case: ParityCase):
    weights64, inputs = case_data(case)
    spec64 = case.spec.replace(dtype="float64")
    params = dict(weights64)
    call = {k: inputs[k] for k in ("seq_lens", "h0", "c0")}
    oracle = registry.reference()
    try:
        outputs, tape = oracle.forward_with_tape(spec64, params, inputs["x"], **call)
    except NotSupported:  # a variant the hand-written BPTT lacks: forward checks only
        outputs = oracle.forward(spec64, params, inputs["x"], **call)
        return weights64, inputs, outputs.as_dict(), cotangents_for(outputs, case.seed), None
    cot = cotangents_for(outputs, case.seed)
    grads = oracle.backward(params, tape, **{f"d{k}": v for k, v in cot.items()})
    return weights64, inputs, outputs.as_dict(), cot, grads


def run_case(case: ParityCase, backend_names, reference=None, budget=None) -> list[BackendResult]:
    """Every backend on `case` against the reference; `budget`: an ErrorBudget for a model
    that amplifies its rounding (None: the plain tolerance)."""
    weights64, inputs, ref_out, cot, ref_grads = reference or reference_results(case)
    dtype = case.spec.dtype
    weights = weights64.astype(dtype)
    cast = {k: None if v is None or k == "seq_lens" else v.astype(dtype) for k, v in inputs.items()}
    cast["seq_lens"] = inputs["seq_lens"]
    cot_cast = {k: v.astype(dtype) for k, v in cot.items()}
    results = []
    for name in backend_names:
        unusable = _unusable(name, case)
        if unusable is not None:
            results.append(unusable)
            continue
        judged = {"budget": budget, "steps": case.T, "stepwise": not case.spec.bidirectional}
        results.append(
            _run_backend(name, case, weights, cast, cot_cast, ref_out, ref_grads, judged)
        )
    return results


def _unusable(name: str, case: ParityCase) -> BackendResult | None:
    """A skip with its reason (package or device missing), an error (the backend itself is
    broken: its traceback goes to stderr), or None when it can run."""
    try:
        reason = registry.spec_reason(name, case.spec) or registry.unavailable_reason(name)
    except NotSupported as exc:
        reason = str(exc)
    except Exception as exc:
        traceback.print_exception(exc, file=sys.stderr)
        return BackendResult.of(name, case.spec, case.id, "error", describe_error(exc))
    return None if reason is None else BackendResult.of(name, case.spec, case.id, "skipped", reason)


def _run_backend(name, case, weights, cast, cot_cast, ref_out, ref_grads, judged) -> BackendResult:
    """Forward, then gradients; a backend without gradients (ONNX Runtime) is judged on its
    forward alone and says so."""
    dtype, note = case.spec.dtype, ""
    x, rest = cast["x"], {k: cast[k] for k in ("seq_lens", "h0", "c0")}
    try:
        prepared = registry.get_backend(name).build(weights.spec, weights)
        comparisons = compare_all(ref_out, prepared.forward(x, **rest).as_dict(), dtype, **judged)
        if ref_grads is None:
            note = f"forward only: the reference has no BPTT for {weights.spec.describe_variants()}"
        else:
            try:
                grads = prepared.grad(x, cot_cast, **rest)
                comparisons += compare_all(ref_grads, grads, dtype, prefix="grad:", **judged)
            except NotSupported as exc:
                note = f"forward only: {exc}"
    except NotSupported as exc:
        return BackendResult.of(name, case.spec, case.id, "skipped", str(exc))
    except Exception as exc:  # a backend that breaks is reported, and the matrix goes on
        traceback.print_exception(exc, file=sys.stderr)
        return BackendResult.of(name, case.spec, case.id, "error", describe_error(exc))
    status = "passed" if all(c.passed for c in comparisons) else "failed"
    result = BackendResult.of(name, case.spec, case.id, status, note, comparisons)
    result.audit = prepared.audit
    return result
