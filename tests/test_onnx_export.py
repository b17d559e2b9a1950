"""Every export path: a checked model, dynamic shapes where the exporter keeps them, the
export-form audit, ONNX Runtime parity against the NumPy reference, and the GRU
linear_before_reset regression."""

from __future__ import annotations

import numpy as np
import pytest

from backends import numpy_ref
from harness import registry
from harness.model.spec import Head, ModelSpec
from harness.model.weights import init_weights
from harness.parity.checks import compare_all

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnbench[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from backends.onnx_export import EXAMPLE_B, EXAMPLE_T, export  # noqa: E402
from harness.onnx.audit import audit  # noqa: E402

# Seen on torch 2.13 / onnxscript 0.7.2 / tf2onnx 1.17 (ARCHITECTURE.md): what each path emits.
EXPECTED_FORM = {
    ("direct", "rnn"): "native RNN",
    ("direct", "lstm"): "native LSTM",
    ("direct", "gru"): "native GRU",
    ("torchscript", "rnn"): "native RNN",
    ("torchscript", "lstm"): "native LSTM",
    ("torchscript", "gru"): "native GRU",
    ("dynamo", "rnn"): "unrolled",
    ("dynamo", "lstm"): "native LSTM",
    ("dynamo", "gru"): "native GRU",
    ("tf2onnx", "rnn"): "Loop",
    ("tf2onnx", "lstm"): "native LSTM",
    ("tf2onnx", "gru"): "Loop",
    ("keras", "rnn"): "Loop",
    ("keras", "lstm"): "native LSTM",
    ("keras", "gru"): "Loop",
}
SPEC = {
    cell: ModelSpec(cell, 3, 6, num_layers=2, bidirectional=True, head=Head(4, "softmax"))
    for cell in ("rnn", "lstm", "gru")
}


def _skip_unless(exporter):
    reason = registry.unavailable_reason(f"ort-{exporter}-cpu")
    if reason:
        pytest.skip(reason)


def _inputs(spec, T, B, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, spec.input_size)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((4, B, spec.hidden_size))).astype(np.float32)
    return x, h0, (h0[::-1].copy() if spec.cell.value == "lstm" else None)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("exporter", ["direct", "torchscript", "dynamo", "tf2onnx", "keras"])
def test_export_form_dynamic_shapes_and_parity(exporter, cell, tmp_path):
    _skip_unless(exporter)
    spec, weights = SPEC[cell], init_weights(SPEC[cell], seed=2)
    exported = export(exporter, spec, weights, tmp_path / "m.onnx")
    row = audit(exported.path, exporter, exported.seconds)
    assert row["checker"] == "ok"
    onnx.shape_inference.infer_shapes(onnx.load(str(exported.path)), strict_mode=True)
    assert row["form"] == EXPECTED_FORM[(exporter, cell)]
    if cell == "gru" and row["native_recurrent_nodes"]:
        assert row["gru_linear_before_reset"] == [1, 1]  # onnxscript < 0.7.1 wrote 0 here
    if exporter == "dynamo":
        assert row["static_T"] == EXAMPLE_T  # recorded, not an obscure failure later
        return
    assert row["static_T"] is None
    T, B = EXAMPLE_T + 6, EXAMPLE_B + 3  # other than the example's
    prepared = registry.get_backend(f"ort-{exporter}-cpu").build(spec, weights)
    x, h0, c0 = _inputs(spec, T, B)
    ours = numpy_ref.forward(
        spec.replace(dtype="float64"),
        dict(weights.astype("float64")),
        x.astype(np.float64),
        None,
        h0,
        c0,
    )
    got = prepared.forward(x, None, h0, c0)
    assert prepared.audit["dynamic_shapes_checked"]
    results = compare_all(ours.as_dict(), got.as_dict(), "float32")
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_dynamo_static_T_is_recorded_and_reexported():
    _skip_unless("dynamo")
    spec, weights = SPEC["rnn"], init_weights(SPEC["rnn"], seed=2)
    prepared = registry.get_backend("ort-dynamo-cpu").build(spec, weights)
    x, h0, _ = _inputs(spec, 9, 3)
    got = prepared.forward(x, None, h0)
    assert prepared.audit["static_T"] == EXAMPLE_T and prepared.audit["reexported_at_T"] == 9
    ref = numpy_ref.forward(spec, weights, x, None, h0)
    assert all(r.passed for r in compare_all(ref.as_dict(), got.as_dict(), "float32"))


def test_direct_export_runs_sequence_lens_in_ort():
    _skip_unless("direct")
    spec = SPEC["gru"]
    weights = init_weights(spec, seed=4)
    prepared = registry.get_backend("ort-direct-cpu").build(spec, weights)
    x, h0, _ = _inputs(spec, 8, 3)
    lens = np.array([8, 3, 5])
    got = prepared.forward(x, lens, h0)
    ref = numpy_ref.forward(spec, weights, x, lens, h0)
    assert np.all(got.y[3:, 1] == 0)
    assert all(r.passed for r in compare_all(ref.as_dict(), got.as_dict(), "float32"))


def test_gru_without_linear_before_reset_is_caught():
    """Regression for onnxscript < 0.7.1, which exported GRUs without linear_before_reset=1:
    the audit shows the 0 and parity fails by about 0.1, far outside any tolerance."""
    from backends.onnx_direct import build_direct_model

    spec = ModelSpec("gru", 3, 6)
    weights = init_weights(spec, seed=1)
    model = build_direct_model(spec, weights, linear_before_reset=0)
    x, h0, _ = _inputs(spec.replace(num_layers=2, bidirectional=True), 12, 3)
    h0 = h0[:1]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(["y"], {"x": x, "seq_lens": np.full(3, 12, np.int32), "h0": h0})[0]
    ref = numpy_ref.forward(spec, weights, x, None, h0)
    (result,) = compare_all({"y": ref.y}, {"y": y}, "float32")
    assert not result.passed and result.max_abs > 1e-2
    assert [
        a.i
        for n in model.graph.node
        if n.op_type == "GRU"
        for a in n.attribute
        if a.name == "linear_before_reset"
    ] == [0]


def test_missing_provider_is_skipped_with_reason():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    reason = registry.unavailable_reason("ort-direct-cuda")
    assert "no CUDAExecutionProvider" in reason and "onnxruntime-gpu" in reason


def test_export_cli_writes_models_and_audit(tmp_path, capsys):
    import json

    from harness.cli.main import main

    _skip_unless("torchscript")
    code = main(
        ["export", "--cell", "lstm", "--exporters", "direct,torchscript", "--out", str(tmp_path)]
    )
    assert code == 0
    assert "native LSTM" in capsys.readouterr().out
    rows = json.loads((tmp_path / "audit.json").read_text())["audit"]
    assert [r["exporter"] for r in rows] == ["direct", "torchscript"]
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == [
        "direct_lstm.onnx",
        "torchscript_lstm.onnx",
    ]
