"""The comparison itself: it must fail on NaN, Inf, shape, dtype and value differences."""

from __future__ import annotations

import numpy as np
import pytest

from harness.parity.checks import compare, compare_all

REF = np.linspace(-1, 1, 12).reshape(3, 4)


def test_equal_tensors_pass_with_zero_error():
    result = compare("y", REF, REF.copy(), "float64")
    assert result.passed and result.max_abs == 0 and result.max_rel == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_the_candidate_fails(bad):
    candidate = REF.copy()
    candidate[1, 2] = bad
    result = compare("h_n", REF, candidate, "float64")
    assert not result.passed
    assert "index (1, 2)" in result.message and "candidate" in result.message


def test_nan_in_the_reference_fails_too():
    reference = REF.copy()
    reference[0, 0] = np.nan
    assert not compare("y", reference, REF.copy(), "float64").passed


def test_nan_everywhere_is_not_a_pass():
    """max(|a - b|) > tol is False for NaN: the comparison must not rely on it."""
    nan = np.full_like(REF, np.nan)
    assert not compare("y", nan, nan, "float64").passed


def test_value_difference_names_tensor_index_and_both_values():
    candidate = REF.copy()
    candidate[2, 1] += 1e-3
    result = compare("grad:l0.R", REF, candidate, "float64")
    assert not result.passed
    assert result.message.startswith("grad:l0.R: at index (2, 1):")
    assert repr(float(candidate[2, 1])) in result.message
    assert repr(float(REF[2, 1])) in result.message
    assert result.max_abs == pytest.approx(1e-3)


def test_float32_tolerance_accepts_rounding_and_rejects_more():
    ref32 = REF.astype(np.float32)
    assert compare("y", REF, ref32, "float32").passed
    assert not compare("y", REF, ref32 + np.float32(1e-3), "float32").passed


def test_float64_tolerance_rejects_float32_rounding():
    """A backend that silently computes in float32 fails a float64 comparison."""
    rounded = REF.astype(np.float32).astype(np.float64) + 1e-8
    assert not compare("y", REF, rounded, "float64").passed


def test_shape_dtype_and_presence_are_checked_before_values():
    assert "shape (4, 3) != reference (3, 4)" in compare("y", REF, REF.T, "float64").message
    assert (
        "dtype float32 != expected float64"
        in compare("y", REF, REF.astype(np.float32), "float64").message
    )
    assert "missing from the candidate" in compare("c_n", REF, None, "float64").message


def test_compare_all_fails_a_key_on_one_side_only():
    results = compare_all({"y": REF}, {"y": REF, "extra": REF}, "float64")
    assert [r.passed for r in results] == [True, False]
    assert "missing from the reference" in results[1].message
