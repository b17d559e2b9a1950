from __future__ import annotations

import numpy as np
import pytest

from backends import numpy_ref
from harness.model.optim import clip_by_global_norm, global_norm
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import init_weights
from harness.parity.training import HIDDEN, MAX_NORM, sine_batches


def test_clip_scales_to_the_global_norm_by_hand():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}  # global norm 5
    clipped = clip_by_global_norm(grads, 1.0)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0])
    np.testing.assert_allclose(clipped["b"], [[0.0, 0.8]])
    assert global_norm(clipped.values()) == pytest.approx(1.0)


def test_clip_leaves_small_gradients_alone():
    grads = {"a": np.array([0.3, 0.4])}
    np.testing.assert_array_equal(clip_by_global_norm(grads, 1.0)["a"], grads["a"])


@pytest.mark.parametrize("cell", list(Cell))
def test_training_trajectories_exercise_clipping(cell):
    """The first step's gradient norm exceeds MAX_NORM, so the trajectory comparison also
    compares each framework's clipping, not just plain SGD."""
    spec = ModelSpec(cell, 1, HIDDEN, head=Head(1), dtype="float64")
    params = dict(init_weights(spec.replace(dtype="float32"), seed=5).astype("float64"))
    xs, ys = sine_batches()
    out, tape = numpy_ref.forward_with_tape(spec, params, xs[0])
    grads = numpy_ref.backward(params, tape, dhead=2 * (out.head - ys[0]) / out.head.size)
    assert global_norm(grads[k] for k in params) > MAX_NORM
