"""The iteration law (harness/sweeps/iteration_law.py): fitted on synthetic counts made from a
known law it recovers that law; it caps at T + 1, predicts no convergence for LLE >= 0 and past
max_iter; a sweep row's residuals give its count at every looser tol."""

from __future__ import annotations

import math

import pytest

from harness.sweeps import iteration_law as law_module
from harness.sweeps.iteration_law import Law, Point, fit, points, predict
from tests.synthetic_law import sweep_row

LLES = (-2.0, -1.0, -0.5, -0.3, -0.2, -0.1)


def synthetic(law: Law, steps: int = 100_000) -> list[Point]:
    """Counts a law makes exactly (unrounded: the fit is of a continuous law)."""
    out = []
    for lle in LLES:
        for tol in (1e-6, 1e-12):
            k = law.unbounded(lle, tol)
            out.append(Point(law.cell, law.method, lle, steps, tol, k, "fit"))  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize(
    "truth",
    [
        Law("gru", "quasi-newton", 2.0, 0.15, 2.0, 0, 0, 0),
        Law("rnn", "newton", 3.5, 1.2, 0.85, 0, 0, 0),
    ],
)
def test_fit_recovers_a_known_law(truth):
    fitted = fit(synthetic(truth), truth.cell, truth.method)
    assert fitted is not None
    assert fitted.c == truth.c
    assert fitted.a == pytest.approx(truth.a, rel=1e-9)
    assert fitted.p == pytest.approx(truth.p, rel=1e-9)
    assert fitted.n == 2 * len(LLES) and fitted.rms < 1e-9


def test_fit_leaves_out_held_out_and_capped_points():
    truth = Law("lstm", "quasi-newton", 1.0, 0.3, 1.5, 0, 0, 0)
    found = synthetic(truth)
    wrong = [Point("lstm", "quasi-newton", -0.4, 100_000, 1e-6, 999, "held out")]
    capped = [Point("lstm", "quasi-newton", -0.05, 16, 1e-6, 17, "fit")]  # T + 1: says T
    fitted = fit(found + wrong + capped, "lstm", "quasi-newton")
    assert fitted.n == len(found) and fitted.p == pytest.approx(1.5, rel=1e-9)
    assert fit(found[:4], "lstm", "quasi-newton") is None  # two distinct LLE only


def test_prediction_by_hand():
    law = Law("gru", "quasi-newton", 2.0, 0.1, 2.0, 0, 0, 0)
    # 2 + 0.1 * ln(1e6) * 0.5^-2 = 2 + 0.4 * 13.8155... = 7.526 -> 8
    assert predict(law, -0.5, 1024, 1e-6, 1025).iterations == 8
    assert predict(law, -0.5, 4, 1e-6, 5).iterations == 5  # capped at T + 1
    newton = Law("rnn", "newton", 3.0, 1.0, 1.0, 0, 0, 0)
    # 3 + log2(ln(1e6) / ln(1e12)) + 1 / 0.25 = 3 - 1 + 4 = 6
    assert predict(newton, -0.25, 1024, 1e-6, 1025).iterations == 6


@pytest.mark.parametrize("lle", [0.0, 0.05, 0.4])
def test_no_convergence_predicted_at_and_beyond_lle_zero(lle):
    law = Law("rnn", "quasi-newton", 5.0, 0.6, 1.6, 0, 0, 0)
    answer = predict(law, lle, 1024, 1e-6, 1025)
    assert answer.iterations is None and ">= 0" in answer.reason
    assert math.isinf(answer.unbounded)


def test_no_convergence_predicted_past_max_iter():
    law = Law("rnn", "quasi-newton", 5.0, 0.6, 1.6, 0, 0, 0)
    answer = predict(law, -0.02, 4096, 1e-12, 1000)
    assert answer.iterations is None and "exceed max_iter = 1000" in answer.reason
    assert predict(law, None, 16, 1e-6, 17).reason.startswith("no finite")


def test_points_from_residuals():
    row = sweep_row(lle=-0.4, iterations=6, residuals=[1.0, 1e-3, 1e-5, 1e-7, 1e-9, 1e-13])
    found = {(p.tol, p.iterations) for p in points([row])}
    # the first change <= 1e-4 is the 3rd, <= 1e-6 the 4th, <= 1e-8 the 5th, then 1e-12's own
    assert found == {(1e-4, 3), (1e-6, 4), (1e-8, 5), (1e-10, 6), (1e-12, 6)}
    off = row.model_copy(update={"parity_passed": False})
    assert points([off]) == []  # stopped off the sequential run: not a count of the method


def test_annotate_marks_roles_and_predictions():
    truth = Law("gru", "quasi-newton", 2.0, 0.15, 2.0, 0, 0, 0)
    rows = []
    for lle in LLES:
        k = math.ceil(truth.unbounded(lle, 1e-12))
        rows.append(sweep_row(steps=100_000, lle=lle, max_iter=100_001, iterations=k))
    rows.append(rows[1].model_copy(update={"grid": "steps"}))  # the T grid's smallest H fits
    rows.append(rows[2].model_copy(update={"grid": "steps", "hidden": 128}))
    annotated, law = law_module.annotate(rows)
    assert [r.law_role for r in annotated] == ["fit"] * (len(LLES) + 1) + ["held out"]
    assert law.residuals["held out"].points == 1
    # counts rounded up: the refit is off by a few percent at most
    for r in annotated:
        assert r.predicted_iterations is not None and r.iterations is not None
        assert abs(r.predicted_iterations - r.iterations) <= max(1, 0.05 * r.iterations)
