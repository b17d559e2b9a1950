"""Quasi-Newton iterations counted on the model itself at short lengths (harness/predict/
counted.py): read in ln T, never past T + 1; and on a trained LSTM whose count grows with T,
within 2x of the count a real solve takes where the exponent's law alone is off by more."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness import registry
from harness.model.weights import load_weights
from harness.predict import laws as law_files
from harness.predict.counted import Counted, count_iterations, count_lengths
from harness.predict.model import Predictor

TRAINED_LSTM = Path(__file__).resolve().parents[1] / "results/trained"


def test_counts_are_read_in_ln_T_and_capped():
    counted = Counted("quasi-newton", 1, {128: 60, 256: 80})
    assert counted.extrapolate(64) == 60  # below the shortest: its count (capped by the caller)
    assert counted.extrapolate(256) == 80
    assert counted.extrapolate(181) == pytest.approx(60 + 20 * math.log(181 / 128) / math.log(2))
    assert counted.extrapolate(1024) == pytest.approx(80 + 20 * 2)
    flat = Counted("quasi-newton", 1, {128: 30, 256: 25})  # never below the shorter's count
    assert flat.extrapolate(4096) == 30
    assert Counted("quasi-newton", 1, {128: 30, 256: None}).extrapolate(512) is None


def test_counting_lengths_are_at_most_half_the_longest_T():
    assert count_lengths(4096) == (128, 256)
    assert count_lengths(256) == (64, 128)
    assert count_lengths(100) == (16, 32)
    assert count_lengths(40) == (16,)
    assert count_lengths(24) == (12,)
    assert count_lengths(1) == (1,)


def _trained_lstm():
    files = sorted(TRAINED_LSTM.glob("model-lstm_membrane.pt-*.npz"))
    if not files:
        pytest.skip("the trained example models are not in this checkout")
    return load_weights(files[0])


@pytest.mark.parametrize("steps", [1024, 4096])
def test_a_trained_lstm_is_predicted_within_2x_where_the_law_alone_is_not(steps):
    weights = _trained_lstm()
    spec = weights.spec.replace(batch_first=False)
    x = np.random.default_rng(1).standard_normal((steps, 1, spec.input_size))
    counted = count_iterations(spec, weights, x, 1e-6, steps)
    assert sorted(counted.counts) == [128, 256]
    spec64 = spec.replace(dtype="float64", head=None)
    params = {k: np.asarray(weights[k], np.float64) for k in weights if not k.startswith("head")}
    solved = registry.parallel_in_time().solve_model(
        spec64, params, x, "quasi-newton", 1e-6, steps + 1
    )
    assert solved.converged
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
