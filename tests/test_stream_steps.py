"""Every backend's stateful step, one call a step with the state carried by the caller, gives
what the whole sequence run at once gives (outputs at every step, final states, the head's
output): against the float64 reference, with the parity checks' tolerances. A model that cannot
stream says why in one line."""

from __future__ import annotations

import numpy as np
import pytest

from harness import registry
from harness.model.protocol import NotSupported
from harness.model.spec import Head, ModelSpec
from harness.model.weights import init_weights
from harness.parity.checks import compare_all

# (backend, cells): the forms of the step each framework has; torch.compile once (its compile
# takes seconds), the others on every cell
STEPS = [
    ("numpy", ("rnn", "lstm", "gru")),
    ("torch-cpu", ("rnn", "lstm", "gru")),
    ("torch-cpu-script", ("rnn", "lstm", "gru")),
    ("torch-cpu-compile", ("lstm",)),
    ("tf-eager", ("gru",)),
    ("tf-function", ("rnn", "lstm", "gru")),
    ("tf-xla", ("lstm",)),
    ("ort-direct-cpu", ("rnn", "lstm", "gru")),
]
T, B = 7, 3


def _runner(name: str, spec: ModelSpec, weights):
    backend = registry.get_backend(name)
    reason = backend.unavailable_reason() or registry.spec_reason(name, spec)
    if reason:
        pytest.skip(reason)
    backend.set_threads(1)
    return backend.build(spec, weights.astype(spec.dtype)).step_runner()


def _streamed_against_the_sequence(name: str, spec: ModelSpec) -> None:
    weights = init_weights(spec.replace(dtype="float32"), seed=3).astype("float64")
    x = np.random.default_rng(4).standard_normal((T, B, spec.input_size))
    x = x.astype("float32").astype("float64")
    reference = registry.reference().forward(spec.replace(dtype="float64"), dict(weights), x)
    runner = _runner(name, spec, weights)
    got = registry.streaming().streamed(runner, spec, x.astype(spec.dtype))
    assert set(got.as_dict()) == set(reference.as_dict())
    checks = compare_all(reference.as_dict(), got.as_dict(), spec.dtype)
    assert all(c.passed for c in checks), [c.message for c in checks if not c.passed]


@pytest.mark.parametrize("name, cell", [(name, cell) for name, cells in STEPS for cell in cells])
def test_single_steps_give_the_whole_sequence(name, cell):
    """Two layers and a softmax head: each layer's state carried, the head on the last."""
    spec = ModelSpec(cell, 4, 6, num_layers=2, head=Head(3, "softmax"))
    _streamed_against_the_sequence(name, spec)


@pytest.mark.parametrize(
    "name, variant",
    [
        ("numpy", {"peepholes": True, "input_forget": True}),
        ("numpy", {"clip": 0.4}),
        ("ort-direct-cpu", {"peepholes": True, "clip": 0.4}),
        ("tf-function", {"linear_before_reset": False}),
        ("ort-direct-cpu", {"linear_before_reset": False}),
    ],
)
def test_the_step_computes_the_variants_its_backend_claims(name, variant):
    cell = "gru" if "linear_before_reset" in variant else "lstm"
    _streamed_against_the_sequence(name, ModelSpec(cell, 4, 6, **variant))


def test_a_float64_step_holds_float64_parity():
    _streamed_against_the_sequence("numpy", ModelSpec("gru", 4, 6, dtype="float64"))
    _streamed_against_the_sequence("torch-cpu", ModelSpec("lstm", 4, 6, dtype="float64"))


@pytest.mark.parametrize("name", [name for name, _ in STEPS if name != "torch-cpu-compile"])
def test_a_bidirectional_model_cannot_stream(name):
    spec = ModelSpec("lstm", 4, 6, bidirectional=True)
    weights = init_weights(spec, seed=1)
    with pytest.raises(NotSupported, match="bidirectional model cannot stream: its reverse"):
        _runner(name, spec, weights)


def test_a_state_goes_to_its_canonical_form_and_back_unchanged():
    spec = ModelSpec("lstm", 4, 6, num_layers=2)
    weights = init_weights(spec, seed=1)
    h = np.random.default_rng(1).standard_normal((2, B, 6)).astype("float32")
    c = np.random.default_rng(2).standard_normal((2, B, 6)).astype("float32")
    for name in ("numpy", "torch-cpu", "tf-function", "ort-direct-cpu"):
        runner = _runner(name, spec, weights)
        back_h, back_c = runner.from_state(runner.to_state(h, c))
        assert np.array_equal(back_h, h) and np.array_equal(back_c, c), name
        x_t = np.ones((B, 4), "float32")
        assert np.array_equal(runner.noop(x_t), x_t)  # one trivial operation, nothing more


def test_onnx_runtimes_bound_step_gives_the_whole_sequence_too():
    """I/O binding (a GPU provider's way) forced on the CPU: the state as OrtValues."""
    from backends.streaming.ort_step import ort_step_runner

    spec = ModelSpec("gru", 4, 6, num_layers=2, head=Head(3, "none"))
    weights = init_weights(spec, seed=3)
    x = np.random.default_rng(4).standard_normal((T, B, 4)).astype("float32")
    backend = registry.get_backend("ort-direct-cpu")
    backend.set_threads(1)
    runner = ort_step_runner(backend.build(spec, weights), io_binding=True)
    assert "bound as OrtValues" in runner.impl_class
    got = registry.streaming().streamed(runner, spec, x)
    reference = registry.reference().forward(spec, dict(weights), x)
    checks = compare_all(reference.as_dict(), got.as_dict(), "float32")
    assert all(c.passed for c in checks), [c.message for c in checks if not c.passed]
    for batch in (1, 4, 2):  # a server's batches vary in size
        (y, head), state = runner.step(x[0, :1].repeat(batch, 0), runner.zero_state(batch))
        assert y.shape == (batch, 6) and head.shape == (batch, 3)
        assert runner.from_state(state)[0].shape == (2, batch, 6)


@pytest.mark.parametrize("name", ["numpy", "torch-cpu", "tf-function", "ort-direct-cpu"])
def test_a_state_the_caller_holds_is_never_written_over(name):
    spec = ModelSpec("lstm", 4, 6)
    runner = _runner(name, spec, init_weights(spec, seed=1))
    x = np.random.default_rng(4).standard_normal((2, B, 4)).astype("float32")
    _, held = runner.step(x[0], runner.zero_state(B))
    before = [a.copy() for a in runner.from_state(held)]
    runner.step(x[1], held)
    runner.step(x[0], runner.step(x[1], held)[1])
    assert all(np.array_equal(a, b) for a, b in zip(runner.from_state(held), before, strict=True))


def test_a_backend_without_a_step_says_so():
    from harness.model.protocol import BasePrepared

    with pytest.raises(NotSupported, match="has no stateful step"):
        BasePrepared().step_runner()
    assert "stream" not in registry.modes_of("torch-cuda-graphs")
    assert "stream" not in registry.modes_of("ort-torchscript-cpu")
    with pytest.raises(NotSupported, match="the torchscript export has no one-step graph"):
        _runner(
            "ort-torchscript-cpu", ModelSpec("lstm", 4, 6), init_weights(ModelSpec("lstm", 4, 6))
        )
