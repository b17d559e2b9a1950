"""ONNX's own backend node tests (tests/onnx_node_tests.py writes them as onnx ships them):
`rnnbench parity --model model.onnx --inputs test_data_set_0` passes every one: W, R, B (and P)
as graph inputs, GRU linear_before_reset=0, LSTM peepholes, layout=1 (ONNX Runtime's row a skip
with its reason, the reference still checking the shipped outputs), reverse and bidirectional.
A shipped output or a weight moved by a little fails."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnbench[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from harness.cli.main import main  # noqa: E402
from tests.onnx_node_tests import write_node_tests  # noqa: E402

EXPECTED = (
    "test_simple_rnn_defaults",
    "test_simple_rnn_with_initial_bias",
    "test_rnn_seq_length",
    "test_gru_defaults",
    "test_gru_seq_length",
    "test_gru_with_initial_bias",
    "test_lstm_defaults",
    "test_lstm_with_initial_bias",
    "test_lstm_with_peepholes",
    "test_simple_rnn_batchwise",
    "test_gru_batchwise",
    "test_lstm_batchwise",
)


@pytest.fixture(scope="module")
def node_tests(tmp_path_factory):
    return write_node_tests(tmp_path_factory.mktemp("node"))


def _parity(test, *extra):
    return main(
        [
            "parity",
            "--model",
            str(test / "model.onnx"),
            "--inputs",
            str(test / "test_data_set_0"),
            "--backends",
            "numpy,ort-direct-cpu",
            *extra,
        ]
    )


def test_the_twelve_named_tests_are_generated(node_tests):
    assert set(EXPECTED) <= set(node_tests), sorted(node_tests)


@pytest.mark.parametrize("name", EXPECTED)
def test_each_node_test_passes_with_its_shipped_data(name, node_tests, tmp_path, capsys):
    test = node_tests[name]
    record = tmp_path / "parity.json"
    code = _parity(test, "--json", str(record))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    shipped = next(line for line in out.splitlines() if line.startswith("shipped-outputs"))
    assert shipped.rstrip().endswith("passed"), out
    model_row = next(line for line in out.splitlines() if line.startswith("model-file"))
    if "batchwise" in name:  # ONNX Runtime runs no layout=1 recurrent node
        assert "skipped" in model_row and "layout == 1" in model_row, model_row
    else:
        assert model_row.rstrip().endswith("passed"), model_row
    doc = json.loads(record.read_text())
    assert doc["passed"] is True and doc["model"]["kind"] == "onnx"


def test_the_other_node_tests_pass_too(node_tests, capsys):
    """Whatever else the installed onnx ships (reverse, bidirectional)."""
    for name in sorted(set(node_tests) - set(EXPECTED)):
        assert _parity(node_tests[name]) == 0, (name, capsys.readouterr())
        capsys.readouterr()


def test_a_wrong_shipped_output_fails_naming_it(node_tests, tmp_path, capsys):
    """The reference, not ONNX Runtime, is what the shipped outputs are held to: one element
    moved by 1e-3 fails even where ORT cannot run the file (layout=1)."""
    import shutil

    from onnx import TensorProto, numpy_helper

    for name in ("test_gru_defaults", "test_lstm_batchwise"):
        test = tmp_path / name
        shutil.copytree(node_tests[name], test)
        path = test / "test_data_set_0" / "output_0.pb"
        tensor = TensorProto()
        tensor.ParseFromString(path.read_bytes())
        value = numpy_helper.to_array(tensor).copy()
        value.flat[0] += 1e-3
        path.write_bytes(numpy_helper.from_array(value, tensor.name).SerializeToString())
        assert _parity(test) == 1
        err = capsys.readouterr().err
        assert "FAIL shipped-outputs" in err and "at index" in err, err


def test_a_weight_given_as_input_is_the_weight_checked(node_tests, tmp_path, capsys):
    """W moved by 1e-2 in the data: the file and the reference agree (both use it), the
    shipped outputs, made with the original W, do not."""
    import shutil

    from onnx import TensorProto, numpy_helper

    test = tmp_path / "w"
    shutil.copytree(node_tests["test_lstm_defaults"], test)
    path = test / "test_data_set_0" / "input_1.pb"
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    assert tensor.name == "W"
    value = numpy_helper.to_array(tensor) + np.float32(1e-2)
    path.write_bytes(numpy_helper.from_array(value, "W").SerializeToString())
    assert _parity(test) == 1
    out = capsys.readouterr().out
    assert next(r for r in out.splitlines() if r.startswith("model-file")).endswith("passed")
    assert "FAILED" in next(r for r in out.splitlines() if r.startswith("shipped-outputs"))


def test_without_its_inputs_a_graph_input_weight_is_one_line(node_tests, capsys):
    test = node_tests["test_gru_defaults"]
    assert main(["parity", "--model", str(test / "model.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "whose value is not given: pass --inputs" in err, err


def test_inputs_that_are_not_test_data_are_one_line(node_tests, tmp_path, capsys):
    test = node_tests["test_gru_defaults"]
    (tmp_path / "x.txt").write_text("not data")
    code = main(
        ["parity", "--model", str(test / "model.onnx"), "--inputs", str(tmp_path / "x.txt")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "allowed an ONNX test-data folder" in err, err
