"""Gate layouts and importing a user's own torch / Keras model into canonical weights."""

from __future__ import annotations

import numpy as np
import pytest

from harness.model.layouts import GATE_ORDER, gate_permutation, reorder_gates
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import init_weights


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_gate_reorder_round_trips(cell, framework):
    a = np.arange(cell.gates * 3 * 2).reshape(cell.gates * 3, 2)
    there = reorder_gates(a, cell, "onnx", framework)
    np.testing.assert_array_equal(reorder_gates(there, cell, framework, "onnx"), a)


def test_lstm_and_gru_permutations_are_the_documented_ones():
    assert GATE_ORDER["torch"][Cell.LSTM] == "ifco"
    assert gate_permutation(Cell.LSTM, "onnx", "torch") == [0, 2, 3, 1]
    assert gate_permutation(Cell.GRU, "onnx", "torch") == [1, 0, 2]
    assert gate_permutation(Cell.GRU, "onnx", "keras") == [0, 1, 2]


SPECS = [
    ModelSpec("lstm", 3, 5, num_layers=2, bidirectional=True, head=Head(2, "softmax")),
    ModelSpec("gru", 4, 3, bidirectional=True),
    ModelSpec("rnn", 2, 6, num_layers=2, dtype="float64"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.cell.value)
def test_torch_round_trip_is_exact(spec):
    pytest.importorskip("torch", reason="torch is not installed")
    from backends.torch_backend import from_torch_state_dict, to_torch_state_dict

    weights = init_weights(spec, seed=4)
    back = from_torch_state_dict(spec, to_torch_state_dict(weights))
    assert back.digest() == weights.digest()


def test_import_a_users_torch_module_and_match_it():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from backends import numpy_ref
    from backends.torch_backend import import_module

    torch.manual_seed(0)
    module = torch.nn.GRU(4, 6, num_layers=2, bidirectional=True, batch_first=True).double()
    spec, weights = import_module(module)
    assert spec == ModelSpec(
        "gru", 4, 6, num_layers=2, bidirectional=True, batch_first=True, dtype="float64"
    )
    x = np.random.default_rng(0).standard_normal((3, 7, 4))
    with torch.no_grad():
        y, h_n = module(torch.from_numpy(x))
    ours = numpy_ref.forward(spec, weights, x)
    np.testing.assert_allclose(ours.y, y.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ours.h_n, h_n.numpy(), rtol=1e-12, atol=1e-13)


def test_unsupported_torch_modules_are_named():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from backends.torch_backend import import_module
    from harness.model.protocol import NotSupported

    with pytest.raises(NotSupported, match="nonlinearity='relu'"):
        import_module(torch.nn.RNN(2, 3, nonlinearity="relu"))
    with pytest.raises(NotSupported, match="proj_size"):
        import_module(torch.nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(NotSupported, match="Linear is not nn.RNN"):
        import_module(torch.nn.Linear(2, 3))


def test_import_a_users_keras_model_and_match_it():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")
    from backends import numpy_ref, tf_backend

    keras = tf_backend.keras
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, 3))
    h = keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True))(inputs)
    h = keras.layers.Bidirectional(keras.layers.LSTM(5))(h)
    outputs = keras.layers.Dense(4, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    spec, weights = tf_backend.import_keras_model(model)
    assert spec.cell is Cell.LSTM and spec.num_layers == 2 and spec.bidirectional
    assert spec.head == Head(4, "softmax") and spec.batch_first
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    expected = model(x).numpy()
    np.testing.assert_allclose(numpy_ref.forward(spec, weights, x).head, expected, atol=2e-6)


def test_seed_style_keras_model_imports():
    """SimpleRNN(64) -> Dense(10, softmax), as in the seed notebook, via Sequential."""
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")
    from backends import numpy_ref, tf_backend

    keras = tf_backend.keras
    model = keras.Sequential(
        [
            keras.Input((None, 1)),
            keras.layers.SimpleRNN(64),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    spec, weights = tf_backend.import_keras_model(model)
    assert spec == ModelSpec("rnn", 1, 64, batch_first=True, head=Head(10, "softmax"))
    x = np.random.default_rng(1).standard_normal((4, 9, 1)).astype(np.float32)
    np.testing.assert_allclose(
        numpy_ref.forward(spec, weights, x).head, model(x).numpy(), atol=2e-6
    )
