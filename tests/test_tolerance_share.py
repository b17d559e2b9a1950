"""The parity heatmap paints each backend by the pass rule's own share of tolerance,
|got - ref| / (atol + rtol |ref|), never by max_abs / atol alone; no division by zero."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.parity_files import parity_grid
from harness.analysis.plots import heat_label
from harness.json_values import nulls_for_nonfinite
from harness.parity.checks import compare, share_of_limit
from harness.parity.report import comparison_share, tolerance_grid
from harness.records.parity import ParityRecord


def _doc(comparisons, status="passed", backend="torch-cpu", case="lstm-L1-uni-full-float32"):
    result = {"backend": backend, "case": case, "status": status, "reason": "", "audit": None}
    result.update(cell="lstm", dtype="float32", layers=1, directions=1)
    return {"summary": [], "results": [{**result, "comparisons": comparisons}]}


def _record(comparisons, **fields) -> ParityRecord:
    """The typed record a parity JSON of one result is read as."""
    return ParityRecord.model_validate(nulls_for_nonfinite(_doc(comparisons, **fields)))


def test_a_check_passing_by_its_rtol_term_is_painted_as_passing():
    reference = np.array([100.0, 1.0])
    candidate = np.array([100.005, 1.0], dtype=np.float32)
    c = compare("y", reference, candidate, "float32")
    # atol = 1e-5 * 100 = 1e-3 < |diff| = 5e-3 <= atol + 1e-4 * 100 = 1.1e-2: it passes
    assert c.passed and c.max_abs / c.atol > 4
    diff = abs(float(np.float32(100.005)) - 100.0)
    assert c.share_of_tolerance == pytest.approx(diff / (1e-3 + 1e-2))
    grid = parity_grid([_record([c.as_dict()])])
    (share,) = grid.values[0]
    assert share < 1 and heat_label(share) == ("45%", "black") and grid.note == ""


def test_a_failing_check_is_painted_fail():
    c = compare("y", np.array([1.0]), np.array([1.1], dtype=np.float32), "float32")
    assert not c.passed and c.share_of_tolerance > 1
    (share,) = parity_grid([_record([c.as_dict()], status="failed")]).values[0]
    assert heat_label(share) == ("FAIL", "red")
    # a structural failure has no values to share: inf, painted FAIL
    shape = compare("y", np.zeros(2), np.zeros(3, dtype=np.float32), "float32")
    assert shape.share_of_tolerance == math.inf and heat_label(math.inf)[0] == "FAIL"


def test_no_division_by_zero():
    limit = np.array([0.0, 2.0])
    assert share_of_limit(np.array([0.0, 1.0]), limit) == 0.5  # exact where the limit is 0
    assert share_of_limit(np.array([1e-30, 1.0]), limit) == math.inf
    assert share_of_limit(np.array([]), np.array([])) == 0.0
    # a comparison written with atol 0 (the ONNX file reader's failures) and no share
    legacy = {"passed": True, "max_abs": 0.0, "atol": 0.0}
    assert comparison_share(legacy) == (0.0, False)
    assert comparison_share({**legacy, "max_abs": 1e-9})[0] == 1.0  # passed: capped
    assert comparison_share({**legacy, "passed": False}) == (math.inf, False)


def test_old_parity_json_falls_back_to_a_bound_with_a_note():
    old = {"quantity": "y", "passed": True, "max_abs": 5e-3, "max_rel": 5e-5, "atol": 1e-3}
    old["rtol"], old["message"] = 1e-4, ""
    grid = parity_grid([_record([old]), _record([], status="skipped", backend="numpy")])
    assert grid.backends == ["numpy", "torch-cpu"]
    assert grid.values == [[None], [1.0]]  # passed: the bound 5x is capped at 100%
    assert "upper bound" in grid.note
    broken = tolerance_grid(_doc([], status="error")["results"])
    assert broken[("torch-cpu", "lstm float32")].share == math.inf
