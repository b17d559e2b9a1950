"""Hand-written BPTT against central finite differences, in float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from backends import numpy_cells, numpy_ref
from harness.model.spec import Head, ModelSpec
from harness.model.weights import init_weights

T, B, I, H = 5, 3, 3, 4
SEQ_LENS = [5, 2, 4]


def _case(cell, layers, bidirectional, with_lens):
    spec = ModelSpec(
        cell,
        I,
        H,
        num_layers=layers,
        bidirectional=bidirectional,
        dtype="float64",
        head=Head(3, "softmax") if layers == 2 else None,
    )
    rng = np.random.default_rng(7)
    LD = layers * spec.num_directions
    inputs = {"x": rng.standard_normal((T, B, I)), "h0": 0.5 * rng.standard_normal((LD, B, H))}
    if cell == "lstm":
        inputs["c0"] = 0.5 * rng.standard_normal((LD, B, H))
    lens = SEQ_LENS if with_lens else None
    return spec, init_weights(spec, seed=3), inputs, lens, rng


def _loss_and_grads(spec, params, inputs, lens, probes):
    out, tape = numpy_ref.forward_with_tape(
        spec, params, inputs["x"], lens, inputs["h0"], inputs.get("c0")
    )
    loss = sum(float((probes[k] * v).sum()) for k, v in out.as_dict().items())
    return loss, out, tape


def relative_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


CASES = list(itertools.product(["rnn", "lstm", "gru"], [1, 2], [False, True], [False, True]))


def gradcheck_errors(cell, layers, bidirectional, with_lens, entries=None):
    """Relative error of every analytic gradient against central differences (eps = 1e-6)."""
    spec, weights, inputs, lens, rng = _case(cell, layers, bidirectional, with_lens)
    params = dict(weights)
    out = numpy_ref.forward(spec, params, inputs["x"], lens, inputs["h0"], inputs.get("c0"))
    probes = {k: rng.standard_normal(v.shape) for k, v in out.as_dict().items()}
    _, _, tape = _loss_and_grads(spec, params, inputs, lens, probes)
    grads = numpy_ref.backward(params, tape, **{_grad_arg(k): v for k, v in probes.items()})
    assert set(grads) == set(params) | set(inputs)
    errors = {}
    for name in sorted(grads):
        analytic = np.asarray(grads[name])
        assert np.all(np.isfinite(analytic)), name
        size = analytic.size if entries is None else min(entries, analytic.size)
        flat_idx = rng.choice(analytic.size, size=size, replace=False)
        numeric = [_numeric_grad(spec, params, inputs, lens, probes, name, i) for i in flat_idx]
        errors[name] = relative_error(analytic.flat[flat_idx], np.array(numeric))
    return errors


def _numeric_grad(spec, params, inputs, lens, probes, name, flat_index, eps=1e-6):
    values = []
    for sign in (1, -1):
        p, i = dict(params), dict(inputs)
        source = i if name in inputs else p
        bumped = np.array(source[name], dtype=np.float64)
        bumped.flat[flat_index] += sign * eps
        source[name] = bumped
        values.append(_loss_and_grads(spec, p, i, lens, probes)[0])
    return (values[0] - values[1]) / (2 * eps)


def _grad_arg(output_name):
    return {"y": "dy", "h_n": "dh_n", "c_n": "dc_n", "head": "dhead"}[output_name]


@pytest.mark.parametrize("cell,layers,bidirectional,with_lens", CASES)
def test_bptt_matches_finite_differences(cell, layers, bidirectional, with_lens):
    errors = gradcheck_errors(cell, layers, bidirectional, with_lens)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: relative error {errors[worst]:.2e}"


def test_gradcheck_catches_a_dropped_term(monkeypatch):
    """The check can fail: BPTT without the forget gate's carry of dc is caught."""
    original = numpy_cells._step_back

    def no_cell_carry(cell, tape, k, dh, dc, da, dah):
        dh_direct, dc_prev = original(cell, tape, k, dh, dc, da, dah)
        return dh_direct, 0 * dc_prev

    monkeypatch.setattr(numpy_cells, "_step_back", no_cell_carry)
    errors = gradcheck_errors("lstm", 1, False, False, entries=8)
    assert errors["l0.R"] > 1e-3


def test_padded_steps_get_no_gradient_and_emit_zeros():
    spec, weights, inputs, lens, rng = _case("gru", 1, True, True)
    params = dict(weights)
    out, tape = numpy_ref.forward_with_tape(spec, params, inputs["x"], lens, inputs["h0"])
    grads = numpy_ref.backward(params, tape, dy=np.ones_like(out.y), dh_n=np.ones_like(out.h_n))
    for b, length in enumerate(SEQ_LENS):
        assert np.all(out.y[length:, b] == 0)
        assert np.all(grads["x"][length:, b] == 0)
        assert np.any(grads["x"][:length, b] != 0)
