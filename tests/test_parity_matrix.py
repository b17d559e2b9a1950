"""The parity matrix in CI: cells x {1, 2 layers} x {uni, bidirectional} x {with, without
sequence_lens} x {float32, float64}, every backend against the NumPy float64 reference,
outputs and every gradient. An absent backend is skipped with its reason."""

from __future__ import annotations

import functools

import pytest

from harness import registry
from harness.parity.cases import default_cases
from harness.parity.run import reference_results, run_case
from harness.parity.training import run_trajectories
from harness.registry import DEFAULT_PARITY as DEFAULT_BACKENDS

CASES = default_cases()


@functools.cache
def _reference(case):
    return reference_results(case)


@pytest.mark.parametrize("backend", DEFAULT_BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_backend_matches_reference(case, backend):
    reason = registry.unavailable_reason(backend)
    if reason:
        pytest.skip(f"{backend}: {reason}")
    (result,) = run_case(case, [backend], reference=_reference(case))
    if result.status == "skipped":
        pytest.skip(result.reason)
    assert result.status == "passed", result.reason or next(
        c.message for c in result.comparisons if not c.passed
    )
    quantities = {c.quantity for c in result.comparisons}
    assert {"y", "h_n"} <= quantities
    assert ("c_n" in quantities) == (case.spec.cell.value == "lstm")
    assert ("head" in quantities) == (case.spec.head is not None)
    if backend.startswith("ort-"):  # ONNX Runtime is inference only, and says so
        assert result.reason.startswith("forward only") and result.audit["checker"] == "ok"
        return
    assert {"grad:x", "grad:h0", "grad:l0.W", "grad:l0.R"} <= quantities
    assert ("grad:head.W" in quantities) == (case.spec.head is not None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_training_trajectories_agree(cell, dtype):
    trajectories = run_trajectories(cell, dtype, DEFAULT_BACKENDS)
    ran = [t for t in trajectories if t.status != "skipped"]
    assert {"numpy"} <= {t.backend for t in ran}
    for t in ran:
        assert t.status == "passed", t.failure
        assert len(t.losses) == 20
        assert t.losses[-1] < t.losses[0]  # it learned something, so the test is not vacuous


def test_a_perturbed_backend_fails(monkeypatch):
    """The matrix reports a backend that is off by 1e-3 in one gradient, naming the tensor."""
    from backends import numpy_backend

    original = numpy_backend.PreparedNumpy.grad

    def off_grad(self, *args, **kwargs):
        grads = original(self, *args, **kwargs)
        grads["l0.R"] = grads["l0.R"].copy()
        grads["l0.R"][0, 1, 1] += 1e-3
        return grads

    monkeypatch.setattr(numpy_backend.PreparedNumpy, "grad", off_grad)
    (result,) = run_case(CASES[0], ["numpy"])
    assert result.status == "failed"
    (bad,) = [c for c in result.comparisons if not c.passed]
    assert bad.quantity == "grad:l0.R" and "index (0, 1, 1)" in bad.message


def test_a_nan_output_fails(monkeypatch):
    from backends import numpy_backend

    original = numpy_backend.PreparedNumpy.forward

    def nan_forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out.y[-1, 0, 0] = float("nan")
        return out

    monkeypatch.setattr(numpy_backend.PreparedNumpy, "forward", nan_forward)
    (result,) = run_case(CASES[1], ["numpy"])
    assert result.status == "failed"
    assert "holds nan" in next(c.message for c in result.comparisons if c.quantity == "y")


def test_unavailable_backend_is_skipped_with_reason():
    (result,) = (
        run_case(CASES[0], ["torch-cuda"]) if registry.unavailable_reason("torch-cuda") else [None]
    )
    if result is None:
        pytest.skip("this machine has a CUDA device")
    assert result.status == "skipped" and "CUDA" in result.reason
