"""The NumPy oracle against ONNX's own operator semantics: onnx.reference, and ONNX Runtime
where ONNX's reference implementation ignores an input (sequence_lens)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from backends import numpy_ref
from tests.onnx_nodes import single_op_model

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install rnnbench[onnx])")
from onnx.reference import ReferenceEvaluator  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    T: int = 3
    B: int = 3
    I: int = 2  # noqa: E741
    H: int = 4
    bias: bool = False
    direction: str = "forward"
    layout: int = 0
    initial_state: bool = False
    lens: tuple[int, ...] | None = None


# The first four mirror ONNX's backend node tests for RNN/LSTM/GRU (defaults, initial bias,
# seq_length, batchwise); the rest cover what those tests miss.
CASES = [
    Case("defaults", T=1, B=3, I=2, H=4),
    Case("with_initial_bias", T=1, B=3, I=3, H=5, bias=True),
    Case("seq_length", T=2, B=3, I=3, H=5, bias=True),
    Case("batchwise", T=1, B=3, I=2, H=6, layout=1, initial_state=True),
    Case("reverse", T=5, bias=True, direction="reverse"),
    Case("bidirectional", T=5, bias=True, direction="bidirectional"),
    Case("bidirectional_batchwise", T=4, bias=True, direction="bidirectional", layout=1),
    Case("initial_states", T=4, bias=True, initial_state=True, direction="bidirectional"),
    Case("long", T=40, B=2, I=5, H=8, bias=True, initial_state=True),
]
LENS_CASES = [
    Case("unequal_lens", T=6, B=4, bias=True, lens=(6, 1, 3, 5)),
    Case("unequal_lens_reverse", T=6, B=4, bias=True, lens=(2, 6, 4, 1), direction="reverse"),
    Case(
        "unequal_lens_bidirectional",
        T=6,
        B=4,
        bias=True,
        lens=(3, 6, 1, 4),
        direction="bidirectional",
        initial_state=True,
    ),
]


def make_inputs(cell, case: Case, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    D = 2 if case.direction == "bidirectional" else 1
    GH = GATES[cell] * case.H
    shape_x = (case.B, case.T, case.I) if case.layout else (case.T, case.B, case.I)
    inputs = {
        "X": rng.standard_normal(shape_x),
        "W": rng.uniform(-0.6, 0.6, (D, GH, case.I)),
        "R": rng.uniform(-0.6, 0.6, (D, GH, case.H)),
    }
    if case.bias:
        inputs["B"] = rng.uniform(-0.5, 0.5, (D, 2 * GH))
    state_shape = (case.B, D, case.H) if case.layout else (D, case.B, case.H)
    if case.initial_state:
        inputs["initial_h"] = rng.uniform(-1, 1, state_shape)
        if cell == "lstm":
            inputs["initial_c"] = rng.uniform(-1, 1, state_shape)
    inputs = {k: v.astype(dtype) for k, v in inputs.items()}
    if case.lens is not None:
        inputs["sequence_lens"] = np.array(case.lens, dtype=np.int32)
    return inputs


def attributes(cell, case: Case, linear_before_reset=1):
    attrs = {"direction": case.direction, "layout": case.layout}
    if cell == "gru":
        attrs["linear_before_reset"] = linear_before_reset
    return attrs


def oracle(cell, case: Case, inputs):
    return numpy_ref.onnx_op(cell, direction=case.direction, layout=case.layout, **inputs)


def reference(cell, case: Case, inputs, **attr_overrides):
    model, outputs = single_op_model(cell, inputs, **{**attributes(cell, case), **attr_overrides})
    return ReferenceEvaluator(model).run(None, inputs)


def assert_outputs_close(ours, theirs, rtol, atol, what):
    """Count first (Y_c only for the LSTM), then each tensor."""
    ours = [a for a in ours if a is not None]
    assert len(ours) == len(theirs), f"{what}: {len(ours)} outputs != {len(theirs)}"
    for name, a, b in zip(("Y", "Y_h", "Y_c"), ours, theirs, strict=False):
        assert_close(a, b, rtol, atol, f"{what}/{name}")


def assert_close(actual, expected, rtol, atol, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)) and np.all(np.isfinite(expected)), f"{what}: NaN/Inf"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_onnx_reference_float64(cell, case):
    inputs = make_inputs(cell, case)
    ours = oracle(cell, case, inputs)
    assert_outputs_close(ours, reference(cell, case, inputs), 1e-12, 1e-13, f"{cell}/{case.name}")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_matches_onnx_reference_float32(cell):
    case = CASES[5]
    inputs = make_inputs(cell, case, dtype="float32")
    ours = oracle(cell, case, inputs)
    assert ours[0].dtype == np.float32
    assert_outputs_close(ours, reference(cell, case, inputs), 1e-5, 1e-6, cell)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("case", LENS_CASES, ids=lambda c: c.name)
def test_sequence_lens_equals_truncated_reference_runs(cell, case):
    """onnx.reference ignores sequence_lens, so each sample is checked against the reference
    run on that sample alone, cut to its length; padded steps of Y must be exactly zero."""
    inputs = make_inputs(cell, case)
    Y, Y_h, Y_c = oracle(cell, case, inputs)
    for b, length in enumerate(case.lens):
        single = {k: v[:, b : b + 1] if k.startswith("initial") else v for k, v in inputs.items()}
        single["X"] = inputs["X"][:length, b : b + 1]
        del single["sequence_lens"]
        ref = reference(cell, case, single)
        assert_close(Y[:length, :, b : b + 1], ref[0], 1e-12, 1e-13, f"{cell} Y sample {b}")
        assert np.all(Y[length:, :, b] == 0), f"{cell}: padded steps of sample {b} not zero"
        assert_close(Y_h[:, b : b + 1], ref[1], 1e-12, 1e-13, f"{cell} Y_h sample {b}")
        if Y_c is not None:
            assert_close(Y_c[:, b : b + 1], ref[2], 1e-12, 1e-13, f"{cell} Y_c sample {b}")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("case", LENS_CASES + [CASES[5], CASES[7]], ids=lambda c: c.name)
def test_matches_onnxruntime_float32(cell, case):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    inputs = make_inputs(cell, case, dtype="float32")
    model, _ = single_op_model(cell, inputs, **attributes(cell, case))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, inputs)
    assert_outputs_close(oracle(cell, case, inputs), theirs, 1e-5, 2e-6, f"{cell}/{case.name}")


def test_gru_linear_before_reset_matters():
    """The canonical GRU is the linear_before_reset=1 form: the =0 form differs by far more
    than rounding, so an exporter that drops the attribute is caught by parity."""
    case = CASES[5]
    inputs = make_inputs("gru", case)
    ours = oracle("gru", case, inputs)[0]
    default_form = reference("gru", case, inputs, linear_before_reset=0)[0]
    assert np.max(np.abs(ours - default_form)) > 1e-2


# ---- the ONNX operator's variants: linear_before_reset=0, peepholes, input_forget, clip ------

VARIANT_CASES = [CASES[1], CASES[5], CASES[6], CASES[8]]


@pytest.mark.parametrize("case", VARIANT_CASES, ids=lambda c: c.name)
def test_gru_linear_before_reset_0_matches_onnx_reference(case):
    inputs = make_inputs("gru", case)
    ours = numpy_ref.onnx_op(
        "gru", direction=case.direction, layout=case.layout, linear_before_reset=0, **inputs
    )
    theirs = reference("gru", case, inputs, linear_before_reset=0)
    assert_outputs_close(ours, theirs, 1e-12, 1e-13, f"gru lbr=0/{case.name}")


@pytest.mark.parametrize("case", VARIANT_CASES, ids=lambda c: c.name)
def test_lstm_peepholes_match_onnx_reference(case):
    inputs = make_inputs("lstm", case)
    D = 2 if case.direction == "bidirectional" else 1
    inputs["P"] = np.random.default_rng(9).uniform(-0.8, 0.8, (D, 3 * case.H))
    ours = numpy_ref.onnx_op("lstm", direction=case.direction, layout=case.layout, **inputs)
    theirs = reference("lstm", case, inputs)
    assert_outputs_close(ours, theirs, 1e-12, 1e-13, f"lstm peepholes/{case.name}")
    without = numpy_ref.onnx_op(
        "lstm", direction=case.direction, layout=case.layout, **{**inputs, "P": None}
    )
    assert np.max(np.abs(ours[0] - without[0])) > 1e-3  # the peepholes count


@pytest.mark.parametrize(
    "cell,attrs",
    [
        ("rnn", {"clip": 0.4}),
        ("gru", {"clip": 0.3}),
        ("gru", {"clip": 0.3, "linear_before_reset": 0}),
        ("lstm", {"clip": 0.5}),
        ("lstm", {"input_forget": 1}),
        ("lstm", {"input_forget": 1, "clip": 0.4}),
    ],
)
@pytest.mark.parametrize("case", [LENS_CASES[2], CASES[7]], ids=lambda c: c.name)
def test_clip_and_input_forget_match_onnxruntime(cell, attrs, case):
    """onnx.reference ignores clip and input_forget; ONNX Runtime computes them (clip bounds
    every activation's input, input_forget makes f = 1 - i). Inputs scaled by 3 so that the
    clip bites."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    inputs = make_inputs(cell, case, dtype="float32")
    inputs = {k: (3 * v).astype(v.dtype) if k in ("X", "W", "R") else v for k, v in inputs.items()}
    if cell == "lstm":
        D = 2 if case.direction == "bidirectional" else 1
        inputs["P"] = np.random.default_rng(4).uniform(-1, 1, (D, 3 * case.H)).astype(np.float32)
    full = {**attributes(cell, case), **attrs}
    model, _ = single_op_model(cell, inputs, **full)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, inputs)
    extra = {k: v for k, v in attrs.items() if k != "direction"}
    ours = numpy_ref.onnx_op(cell, direction=case.direction, layout=case.layout, **extra, **inputs)
    assert_outputs_close(ours, theirs, 1e-5, 2e-6, f"{cell} {attrs}/{case.name}")
    plain = numpy_ref.onnx_op(cell, direction=case.direction, layout=case.layout, **inputs)
    assert np.max(np.abs(ours[0] - plain[0])) > 1e-3, "the variant changes nothing here"
