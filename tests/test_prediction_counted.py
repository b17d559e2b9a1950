"""Quasi-Newton iterations counted on the model itself at short lengths, in its own dtype
(harness/predict/counted.py): read in ln T, or as a power of T where the count grew in
proportion to T, never past T + 1; on a trained LSTM whose count grows with T, within 2x of the
count a real solve takes where the exponent's law alone is off by more; where float32 rounding
stalls the change above tol, or the diagonal says little, a count growing like T is followed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness import registry
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import init_weights, load_weights
from harness.predict import laws as law_files
from harness.predict.api import _counted_record
from harness.predict.counted import PROPORTIONAL, Counted, count_iterations, count_lengths
from harness.predict.model import Predictor

TRAINED = Path(__file__).resolve().parents[1] / "results/trained"


def test_counts_are_read_in_ln_T_and_capped():
    counted = Counted("quasi-newton", 1, {128: 60, 256: 80})
    assert counted.extrapolate(64) == 60  # below the shortest: its count (capped by the caller)
    assert counted.extrapolate(256) == 80
    assert counted.extrapolate(181) == pytest.approx(60 + 20 * math.log(181 / 128) / math.log(2))
    assert counted.extrapolate(1024) == pytest.approx(80 + 20 * 2)
    flat = Counted("quasi-newton", 1, {128: 30, 256: 25})  # never below the shorter's count
    assert flat.extrapolate(4096) == 30
    assert Counted("quasi-newton", 1, {128: 30, 256: None}).extrapolate(512) is None


def test_counts_growing_in_proportion_to_T_are_read_as_a_power_of_T():
    linear = Counted("quasi-newton", 1, {256: 150, 512: 300})
    assert linear.extrapolate(1024) == pytest.approx(600)
    assert linear.extrapolate(384) == pytest.approx(150 * 1.5)
    steep = Counted("quasi-newton", 1, {256: 160, 512: 300})  # T^0.907
    power = math.log(300 / 160) / math.log(2)
    assert power > PROPORTIONAL
    assert steep.extrapolate(4096) == pytest.approx(160 * 16**power)
    # just below the threshold: ln T
    k2 = 160 * 2 ** (PROPORTIONAL - 0.01)
    slow = Counted("quasi-newton", 1, {256: 160, 512: k2})
    assert slow.extrapolate(1024) == pytest.approx(k2 + (k2 - 160))
    # small counts: a steep exponent from a few iterations is rounding, read in ln T
    few = Counted("quasi-newton", 1, {256: 8, 512: 15})
    assert few.extrapolate(65536) == pytest.approx(15 + 7 * 7)


def test_a_stall_needs_more_than_a_few_iterations_of_rounding():
    assert not Counted("quasi-newton", 1, {256: 10, 512: 12}, float64_count=9).stalled
    assert Counted("quasi-newton", 1, {256: 150, 512: 193}, float64_count=152).stalled
    assert not Counted("quasi-newton", 1, {256: 150, 512: 170}, float64_count=152).stalled


def test_counting_lengths_are_at_most_half_the_longest_T():
    assert count_lengths(4096) == (128, 256, 512)
    assert count_lengths(1024) == (128, 256, 512)
    assert count_lengths(256) == (32, 64, 128)
    assert count_lengths(100) == (16, 32)
    assert count_lengths(40) == (16,)
    assert count_lengths(24) == (12,)
    assert count_lengths(1) == (1,)


def _trained(name: str):
    files = sorted(TRAINED.glob(f"model-{name}-*.npz"))
    if not files:
        pytest.skip("the trained example models are not in this checkout")
    return load_weights(files[0])


@pytest.mark.parametrize("steps", [1024, 4096])
def test_a_trained_lstm_is_predicted_within_2x_where_the_law_alone_is_not(steps):
    weights = _trained("lstm_membrane.pt")
    spec = weights.spec.replace(batch_first=False)
    assert spec.dtype == "float32"
    x = np.random.default_rng(1).standard_normal((steps, 1, spec.input_size))
    counted = count_iterations(spec, weights, x, 1e-6, steps)
    assert sorted(counted.counts) == [256, 512]
    solved = _solve(spec, weights, x, steps)
    lle = -0.29  # this model's exponent (the prediction estimates it; here it only gates)
    laws, _ = law_files.load()
    predictor = Predictor(spec, 1, lle, laws, costs=None, counted=counted)  # type: ignore[arg-type]
    found, source = predictor.iterations("quasi-newton", steps, 1e-6, None)
    law_only, _ = Predictor(spec, 1, lle, laws, costs=None).iterations(  # type: ignore[arg-type]
        "quasi-newton", steps, 1e-6, None
    )
    assert source == "counted"
    assert abs(math.log(found.iterations / solved.iterations)) < math.log(2)
    assert abs(math.log(law_only.iterations / solved.iterations)) > math.log(2)


def _solve(spec, weights, x, steps: int):
    """The quasi-Newton solve the prediction predicts, in the model's dtype, without its head."""
    plain = spec.replace(head=None)
    params = {k: np.asarray(weights[k], spec.dtype) for k in weights if not k.startswith("head")}
    xs = np.asarray(x, spec.dtype)
    solved = registry.parallel_in_time().solve_model(
        plain, params, xs, "quasi-newton", 1e-6, steps + 1
    )
    assert solved.converged
    return solved


def _predicted(spec, counted, steps: int) -> int:
    laws, _ = law_files.load()
    predictor = Predictor(spec, 1, -0.1, laws, costs=None, counted=counted)  # type: ignore[arg-type]
    found, source = predictor.iterations("quasi-newton", steps, 1e-6, None)
    assert source == "counted"
    return found.iterations


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_stall_is_seen_where_float64_counts_miss_it(seed):
    """The trained SimpleRNN (H = 64, LLE -0.10) in float32: at tol 1e-6 the change stalls on
    rounding, at a length that depends on the input, and then converges about a step an
    iteration; float64 counts see none of it. Predicted from the probes at 256 and 512 (the
    float32 count above 1.25x float64's at 512), T + 1 at T = 1024: within 2x of the solve."""
    weights = _trained("srnn_digits.keras")
    spec = weights.spec.replace(batch_first=False)
    steps = 1024
    x = np.random.default_rng(seed).standard_normal((steps, 1, spec.input_size))
    solved = _solve(spec, weights, x, steps)
    counted = count_iterations(spec, weights, x, 1e-6, steps)
    in_float64 = count_iterations(spec.replace(dtype="float64"), weights, x, 1e-6, steps)
    assert in_float64.float64_count is None and not in_float64.stalled
    assert solved.iterations > 2 * max(in_float64.counts.values())  # the stall is real
    assert counted.float64_count == in_float64.counts[512] and counted.stalled
    record = _counted_record(counted)  # what the prediction's record and --predict say
    assert record is not None and record.stalled
    assert record.float64_iterations == in_float64.counts[512]
    assert _predicted(spec, counted, steps) == steps + 1
    assert abs(math.log((steps + 1) / solved.iterations)) < math.log(2)
    assert abs(math.log(_predicted(spec, in_float64, steps) / solved.iterations)) > math.log(2)


def test_a_stall_predicts_newton_at_T_plus_1_and_no_stall_leaves_the_law():
    laws, _ = law_files.load()
    spec = ModelSpec(cell=Cell.RNN, input_size=8, hidden_size=64)
    stalled = Counted("quasi-newton", 1, {256: 156, 512: 314}, float64_count=159)
    steady = Counted("quasi-newton", 1, {256: 156, 512: 170}, float64_count=159)
    assert stalled.stalled and not steady.stalled
    assert stalled.extrapolate(512) == 314 and stalled.extrapolate(1024) == 1025
    for counted, expected in ((stalled, (65, "counted")), (steady, (None, "law"))):
        found, source = Predictor(spec, 1, -0.1, laws, costs=None, counted=counted).iterations(  # type: ignore[arg-type]
            "newton", 64, 1e-6, None
        )
        law, _ = Predictor(spec, 1, -0.1, laws, costs=None).iterations("newton", 64, 1e-6, None)  # type: ignore[arg-type]
        assert source == expected[1]
        assert found.iterations == (expected[0] or law.iterations)


def test_a_count_growing_like_T_is_followed_where_ln_T_falls_short():
    """A tanh RNN whose R is orthogonal (gain 1): its Jacobians have little on their diagonal,
    so quasi-Newton advances about one step an iteration, in either dtype."""
    spec = ModelSpec(cell=Cell.RNN, input_size=8, hidden_size=64, dtype="float64")
    weights = dict(init_weights(spec))
    rng = np.random.default_rng(1)
    weights["l0.R"] = np.linalg.qr(rng.standard_normal((64, 64)))[0][None]
    steps = 1024
    x = rng.standard_normal((steps, 1, 8))
    solved = _solve(spec, weights, x, steps)
    counted = count_iterations(spec, weights, x, 1e-6, steps)
    found = _predicted(spec, counted, steps)
    assert abs(math.log(found / solved.iterations)) < math.log(1.15)
    (t1, k1), (t2, k2) = sorted(counted.counts.items())
    in_ln_T = k2 + (k2 - k1) / math.log(t2 / t1) * math.log(steps / t2)
    assert abs(math.log(in_ln_T / solved.iterations)) > math.log(1.25)
