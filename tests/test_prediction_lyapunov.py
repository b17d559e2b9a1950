"""The tangent-vector estimate of the largest Lyapunov exponent (backends/parallel_in_time/
tangent.py) is model_lyapunov's with num = 1, to rounding, for every cell, direction and
layout, at a fraction of its cost (it forms no Jacobian)."""

from __future__ import annotations

import numpy as np
import pytest

from backends.parallel_in_time import largest_lyapunov, model_lyapunov
from harness.model.spec import ModelSpec
from harness.model.weights import init_weights


@pytest.mark.parametrize(
    ("cell", "gain", "bidirectional", "layer", "direction"),
    [
        ("rnn", 1.0, False, 0, 0),
        ("rnn", 6.0, False, 0, 0),  # chaotic: a positive exponent
        ("gru", 3.0, True, 0, 1),
        ("lstm", 4.0, False, 1, 0),
    ],
)
def test_equals_the_dense_benettin_estimate(cell, gain, bidirectional, layer, direction):
    spec = ModelSpec(cell, 5, 12, num_layers=2, bidirectional=bidirectional, dtype="float64")
    weights = init_weights(spec, 3)
    params = {k: weights[k] * (gain if k.endswith(".R") else 1.0) for k in weights}
    x = np.random.default_rng(4).standard_normal((200, 3, 5))
    dense = model_lyapunov(spec, params, x, layer=layer, direction=direction)
    tangent = largest_lyapunov(spec, params, x, layer=layer, direction=direction)
    assert tangent.lle == pytest.approx(dense.lle, abs=1e-12)
    np.testing.assert_allclose(tangent.per_sample, dense.per_sample, atol=1e-12)
    assert (tangent.layer, tangent.direction, tangent.steps) == (layer, dense.direction, 200)
    if gain == 6.0:
        assert tangent.lle > 0


def test_batch_first_inputs():
    spec = ModelSpec("gru", 4, 8, batch_first=True, dtype="float64")
    params = dict(init_weights(spec, 1))
    x = np.random.default_rng(2).standard_normal((2, 50, 4))
    assert largest_lyapunov(spec, params, x).lle == pytest.approx(
        model_lyapunov(spec, params, x).lle, abs=1e-12
    )
