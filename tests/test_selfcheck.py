"""The precision self-check's arithmetic, on made-up runs (the real one is `rnnbench selfcheck`:
a timing, so it is a benchmark, not a test)."""

from __future__ import annotations

import pytest

from harness import stats
from harness.bench import engine, selfcheck
from harness.records.results import CaseRecord


def _fake_runs(monkeypatch, ratios):
    runs = iter(ratios)

    def measure_group(cases, settings, logs):
        ratio = next(runs)
        torch_s = [0.010, 0.011, 0.012]
        numpy_s = [t * ratio for t in torch_s]
        return [
            CaseRecord(
                id=c.id, case=c.as_dict(), status="ok", samples_s=s, stats=stats.summarize(s)
            )
            for c, s in zip(cases, (numpy_s, torch_s), strict=True)
        ]

    monkeypatch.setattr(engine, "measure_group", measure_group)


def test_ratios_within_five_percent_pass(monkeypatch):
    _fake_runs(monkeypatch, [1.60, 1.65, 1.70])
    result = selfcheck.precision(runs=3)
    assert [r["ratio"] for r in result["runs"]] == pytest.approx([1.60, 1.65, 1.70])
    assert result["ratio_mean"] == pytest.approx(1.65)
    assert result["worst_deviation"] == pytest.approx(0.05 / 1.65)
    assert result["within_tolerance"]


def test_a_spread_over_five_percent_fails(monkeypatch):
    _fake_runs(monkeypatch, [1.5, 1.7, 1.6])
    result = selfcheck.precision(runs=3)
    assert result["worst_deviation"] == pytest.approx(0.1 / 1.6)
    assert not result["within_tolerance"]
    assert "OUTSIDE +-5%" in selfcheck.format_report(
        {"timer": engine.selfcheck(), "loop_overhead_ok": True, "precision": result}
    )


def test_the_pair_is_the_standard_case():
    numpy_case, torch_case = selfcheck.standard_pair()
    assert (numpy_case.backend, torch_case.backend) == ("numpy", "torch-cpu")
    assert numpy_case.id == "numpy/forward/lstm/float32/B32/T100/I128/H256/L1/th2"
