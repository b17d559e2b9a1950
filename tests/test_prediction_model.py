"""The prediction's arithmetic on known inputs (harness/predict): cost curves read through their
affine law, the solve's time, ratio, verdict, work multiplier and break-even T from made-up
costs and a made-up law, no convergence predicted for LLE > 0; and the verdict rule on measured
intervals."""

from __future__ import annotations

import math

import pytest

from harness.model.spec import ModelSpec
from harness.predict.costs import CostCurve
from harness.predict.model import Predictor, model_work
from harness.predict.probe import Costs
from harness.predict.verdict import agrees, measured_verdict
from harness.sweeps import parallel_in_time_work as counts
from harness.sweeps.iteration_law import Law


def test_cost_curve_reads_an_affine_cost_exactly():
    lengths = (4, 16, 64, 256)
    curve = CostCurve(lengths, tuple(1e-4 + 2e-6 * T for T in lengths))
    for T in (4, 10, 64, 100, 256, 4096):
        assert curve.at(T) == pytest.approx(1e-4 + 2e-6 * T)
    # one length: proportional to the work
    assert CostCurve((16,), (3e-3,)).at(64) == pytest.approx(12e-3)
    # a step in cost per unit of work (a cache level left) is kept, not smeared
    step = CostCurve((64, 256, 1024), (1e-3, 14e-3, 56e-3))
    assert step.at(64) == 1e-3 and step.at(160) == pytest.approx(7.5e-3)
    assert step.at(4096) == pytest.approx(56e-3 + 4 * 42e-3)  # (4096 - 1024) / 768 = 4
    # noise that makes a longer length cheaper: proportional from the nearest
    assert CostCurve((16, 64), (2e-3, 1e-3)).at(256) == pytest.approx(4e-3)


def test_cost_curve_refuses_bad_points():
    with pytest.raises(ValueError, match="increasing"):
        CostCurve((16, 4), (1.0, 2.0))
    with pytest.raises(ValueError, match="> 0"):
        CostCurve((4,), (0.0,))


SPEC = ModelSpec("gru", 8, 16)
# a step loop of 10 us a step; one quasi-Newton iteration 1 ms + 1 us a step; a solve's setup
# (a one-iteration solve less its iteration) 2 us a step
LOOP = CostCurve((16, 1024), (16 * 1e-5, 1024 * 1e-5))
ITERATION = CostCurve((16, 1024), (1e-3 + 16e-6, 1e-3 + 1024e-6))
FIRST = CostCurve((16, 1024), (1e-3 + 16e-6 + 32e-6, 1e-3 + 1024e-6 + 2048e-6))
# k = 2 + 0.1 ln(1/tol) (-LLE)^-1: at LLE -0.5 and tol 1e-6, 2 + 0.2 * 13.8155 = 4.763 -> 5
LAW = Law("gru", "quasi-newton", 2.0, 0.1, 1.0, 0, 0, 0)


def predictor(lle=-0.5) -> Predictor:
    curves = {"loop": LOOP, "quasi-newton": ITERATION, "quasi-newton first": FIRST}
    costs = Costs("torch-cpu", curves, 0.0)
    return Predictor(SPEC, 1, lle, {("gru", "quasi-newton"): LAW}, costs)


def linear_in_steps(monkeypatch):
    """Read the iteration's curve per step, not per FLOP, for hand arithmetic."""
    monkeypatch.setattr(
        "harness.predict.model.counts.iteration_flops", lambda m, c, B, T, H: float(T)
    )


def test_solve_by_hand(monkeypatch):
    linear_in_steps(monkeypatch)
    made = predictor().solve("quasi-newton", 4096, 1e-6, None)
    assert made.iterations == 5
    iteration = 1e-3 + 4096e-6
    assert made.iteration_s == pytest.approx(iteration)
    assert made.step_loop_s == pytest.approx(4096e-5)
    assert made.setup_s == pytest.approx(2e-6 * 4096)
    assert made.solve_s == pytest.approx(2e-6 * 4096 + 5 * iteration)
    assert made.ratio == pytest.approx((2e-6 * 4096 + 5 * iteration) / 4096e-5, rel=1e-6)
    assert made.verdict == "wins"  # 33.7 ms against 41 ms
    # break-even: 2e-6 T + 5 (1e-3 + 1e-6 T) = 1e-5 T  ->  T = 5e-3 / 3e-6 = 1667
    assert made.break_even_steps == pytest.approx(5e-3 / 3e-6, rel=0.02)
    assert made.wins_up_to_steps is None  # it wins on up to MAX_STEPS
    short = predictor().solve("quasi-newton", 256, 1e-6, None)
    assert short.verdict == "loses" and short.ratio > 1


class _Ratios(Predictor):
    """A predictor whose ratio at T is a given function: the break-even rule alone."""

    def __init__(self, ratio):
        self._ratio = ratio

    def ratio(self, method, steps, tol, max_iter):
        return self._ratio(steps)


def test_the_break_even_is_where_the_first_win_of_an_octave_or_more_starts():
    # wins from 100 to 400 (two octaves), loses past it: a window, start and end recorded
    window = _Ratios(lambda T: 0.8 if 100 <= T <= 400 else 1.2)
    start, end = window.break_even("quasi-newton", 1e-6, None)
    assert 90 < start <= 108 and 380 <= end < 431  # interpolated between grid points
    # a dip under 1 shorter than an octave (one noisy point) is no win: the next stretch is
    dip = _Ratios(lambda T: 0.9 if 60 < T < 70 or T > 1000 else 1.1)
    start, end = dip.break_even("quasi-newton", 1e-6, None)
    assert 861 < start <= 1024 and end is None  # between the grid points 2^9.75 and 2^10
    # a stretch under an octave that runs to the end of the grid counts
    late = _Ratios(lambda T: 0.9 if T > 50000 else 1.1)
    assert late.break_even("quasi-newton", 1e-6, None)[0] > 46000
    assert _Ratios(lambda T: 0.5).break_even("quasi-newton", 1e-6, None) == (4.0, None)
    assert _Ratios(lambda T: 1.5).break_even("quasi-newton", 1e-6, None) == (None, None)
    # from not converging to winning: the first winning grid point, nothing to interpolate
    start, _ = _Ratios(lambda T: None if T < 300 else 0.5).break_even("quasi-newton", 1e-6, None)
    assert start == pytest.approx(2 ** (33 / 4))  # the first grid point past 300


def test_work_multiplier_is_the_counted_one():
    made = predictor().solve("quasi-newton", 1024, 1e-6, None)
    assert made.work_multiplier == pytest.approx(
        counts.work("quasi-newton", "gru", 1, 1024, 8, 16, 5)["work_multiplier"]
    )
    deep = ModelSpec("gru", 8, 16, num_layers=2, bidirectional=True)
    # every layer and direction: its sequential FLOPs and its iterations' FLOPs add up
    sequential = 2 * (
        counts.sequential_flops("gru", 1, 64, 8, 16) + counts.sequential_flops("gru", 1, 64, 32, 16)
    )
    solve = 2 * (
        counts.projection_flops("gru", 1, 64, 8, 16) + counts.projection_flops("gru", 1, 64, 32, 16)
    ) + 4 * 3 * counts.iteration_flops("quasi-newton", "gru", 1, 64, 16)
    assert model_work(deep, 1, 64, "quasi-newton", 3) == pytest.approx(solve / sequential)


@pytest.mark.parametrize("lle", [0.0, 0.1])
def test_no_time_where_no_convergence_is_predicted(lle):
    made = predictor(lle).solve("quasi-newton", 1024, 1e-6, None)
    assert made.iterations is None and made.solve_s is None and made.ratio is None
    assert made.verdict == "does not converge" and "LLE" in made.reason
    assert made.break_even_steps is None


def test_past_max_iter_no_convergence():
    made = predictor(-0.5).solve("quasi-newton", 1024, 1e-6, 3)
    assert made.verdict == "does not converge" and "max_iter = 3" in made.reason


@pytest.mark.parametrize(
    "interval, verdict",
    [
        ((0.5, 0.4, 0.7), "wins"),
        ((2.0, 1.5, 2.7), "loses"),
        ((0.9, 0.7, 1.2), "too close to call"),
        ((1.0, 1.0, 1.0), "too close to call"),
        ((0.99, 0.98, 1.0), "too close to call"),  # reaching 1 is not below it
    ],
)
def test_verdict_from_the_interval(interval, verdict):
    assert measured_verdict(interval) == verdict


def test_verdict_refuses_a_broken_interval():
    with pytest.raises(ValueError):
        measured_verdict((1.0, 2.0, 0.5))
    with pytest.raises(ValueError):
        measured_verdict((1.0, 0.5, math.inf))


def test_agreement():
    assert agrees("wins", "wins") is True and agrees("loses", "wins") is False
    assert agrees("too close to call", "wins") is None and agrees("wins", None) is None
