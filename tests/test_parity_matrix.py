"""The parity matrix: cells x {1, 2 layers} x {uni, bidirectional} x {with, without
sequence_lens} x {float32, float64}, every backend against the NumPy float64 reference,
outputs and every gradient (tests/parity_rows.py says what a row must show). An absent backend
is skipped with its reason.

`tox -e test` runs a representative slice: each backend on each cell, in both dtypes, one and
two layers, uni- and bidirectional, with and without lengths (SHAPES, rotated across backends so
that every cell meets every shape). The rest is marked slow: `tox -e test-full` runs it, and CI
runs the whole matrix through `tox -e parity` (rnnbench parity, its record checked row by row by
tests/test_parity_record.py). The numpy backend in float64 is the reference itself (difference
exactly 0): those rows could not fail and are not run."""

from __future__ import annotations

import functools

import pytest

from harness import registry
from harness.parity.cases import ParityCase, default_cases
from harness.parity.run import reference_results, run_case
from harness.parity.training import run_trajectories
from harness.registry import DEFAULT_PARITY as DEFAULT_BACKENDS
from tests.parity_rows import row_problems, trajectory_problems

CASES = default_cases()
CELLS = ("rnn", "lstm", "gru")
# (layers, bidirectional, with_lens, dtype): one of each per backend, one cell each
SHAPES = ((1, False, True, "float32"), (2, True, False, "float64"), (1, True, False, "float32"))
FAST_TRAJECTORIES = {("rnn", "float32"), ("lstm", "float64"), ("gru", "float32")}


def tautological(case: ParityCase, backend: str) -> bool:
    """The numpy backend in float64 runs the reference's own code on the same numbers."""
    return backend == registry.REFERENCE and case.spec.dtype == "float64"


def slice_shape(backend: str, cell: str) -> tuple[int, bool, bool, str]:
    """(layers, bidirectional, with_lens, dtype) of the one case of `cell` that `tox -e test`
    runs on `backend`: SHAPES rotated, with what the backend cannot run replaced by what it can,
    so that every row of the slice runs: the numpy backend in float32 (see tautological), ONNX
    Runtime in float32 (its RNN, LSTM and GRU operators have no float64 kernel; the exports that
    loop or unroll run in float64 in the whole matrix), an export other than the direct
    builder's without lengths (it has no sequence_lens input)."""
    rotation = DEFAULT_BACKENDS.index(backend) + CELLS.index(cell)
    layers, bidirectional, with_lens, dtype = SHAPES[rotation % len(SHAPES)]
    if backend == registry.REFERENCE or backend.startswith("ort-"):
        dtype = "float32"
    if backend.startswith("ort-") and not backend.startswith("ort-direct-"):
        with_lens = False
    return layers, bidirectional, with_lens, dtype


def representative(case: ParityCase, backend: str) -> bool:
    spec = case.spec
    shape = (spec.num_layers, spec.bidirectional, case.with_lens, spec.dtype)
    return shape == slice_shape(backend, spec.cell.value)


def tier(fast: bool):
    """No mark for what `tox -e test` runs; slow for what only test-full and parity run."""
    return () if fast else pytest.mark.slow


MATRIX = [
    pytest.param(
        case,
        backend,
        id=f"{case.id}-{backend}",
        marks=tier(representative(case, backend)),
    )
    for backend in DEFAULT_BACKENDS
    for case in CASES
    if not tautological(case, backend)
]


@functools.cache
def _reference(case):
    return reference_results(case)


@pytest.mark.parametrize(("case", "backend"), MATRIX)
def test_backend_matches_reference(case, backend):
    reason = registry.unavailable_reason(backend)
    if reason:
        pytest.skip(f"{backend}: {reason}")
    (result,) = run_case(case, [backend], reference=_reference(case))
    if result.status == "skipped":
        assert not representative(case, backend), (
            f"{backend} skips {case.id} of the representative slice ({result.reason}): "
            "slice_shape must pick a case it runs"
        )
        pytest.skip(result.reason)
    problems = row_problems(result, case)
    assert not problems, "\n".join(problems)


def test_the_slice_covers_every_backend_cell_and_shape():
    """What `tox -e test` keeps of the matrix: every backend on every cell, and on each backend
    both dtypes, one and two layers, uni- and bidirectional, with and without lengths, where it
    can run them (slice_shape); every cell meets every shape on some backend."""
    fast = [p.values for p in MATRIX if not p.marks]
    assert len(fast) == len(DEFAULT_BACKENDS) * len(CELLS)
    for backend in DEFAULT_BACKENDS:
        mine = [c for c, b in fast if b == backend]
        ort = backend.startswith("ort-")
        dtypes = {"float32"} if ort or backend == registry.REFERENCE else {"float32", "float64"}
        lens = {False} if ort and not backend.startswith("ort-direct-") else {False, True}
        assert {c.spec.cell.value for c in mine} == set(CELLS), backend
        assert {c.spec.num_layers for c in mine} == {1, 2}, backend
        assert {c.spec.bidirectional for c in mine} == {False, True}, backend
        assert {c.spec.dtype for c in mine} == dtypes, backend
        assert {c.with_lens for c in mine} == lens, backend
    shapes = {(c.spec.cell.value, c.spec.num_layers, c.spec.bidirectional) for c, _ in fast}
    assert len(shapes) == len(CELLS) * len(SHAPES)  # every cell in every shape somewhere
    assert {c.spec.dtype for c, _ in fast} == {"float32", "float64"}
    assert {c.with_lens for c, _ in fast} == {False, True}
    assert not any(tautological(c, b) for c, b in fast)
    assert len(MATRIX) == len(CASES) * len(DEFAULT_BACKENDS) - len(CASES) // 2


@pytest.mark.parametrize(
    ("cell", "dtype"),
    [
        pytest.param(cell, dtype, marks=tier((cell, dtype) in FAST_TRAJECTORIES))
        for dtype in ("float32", "float64")
        for cell in CELLS
    ],
)
def test_training_trajectories_agree(cell, dtype):
    problems = trajectory_problems(run_trajectories(cell, dtype, DEFAULT_BACKENDS), cell, dtype)
    assert not problems, "\n".join(problems)


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
