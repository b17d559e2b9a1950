"""The first FAIL line names the real cause: weights that differ, a head computing another
activation, a cell computing another activation (a native node's attribute, or a Loop body's
ops), never a baked size for what is not one."""

from __future__ import annotations

import pytest

from harness.cli.main import main
from tests import model_files as make


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("onnx", reason="onnx is not installed")
    folder = tmp_path_factory.mktemp("diagnosis")
    net = make.torch_net("gru", H=8, seed=3)
    return make.save_scripted(net, folder / "g.pt"), make.export_onnx(net, folder / "g.onnx")


def _edited(path, out, edit):
    import onnx

    model = onnx.load(str(path))
    edit(model)
    onnx.save(model, str(out))
    return out


def _first_fail(source, export, capsys) -> str:
    code = main(["parity", "--model", str(source), "--against", str(export), "--backends", "numpy"])
    err = capsys.readouterr().err
    assert code == 1, err
    fails = [line for line in err.splitlines() if line.startswith("FAIL")]
    assert not any("bakes" in line for line in fails), err
    return fails[0]


def test_a_changed_recurrent_weight_is_named_first(pair, tmp_path, capsys):
    source, export = pair
    bad = make.perturb_onnx(export, tmp_path / "r.onnx", "one-R", delta=1e-3)
    assert "weights l0.R gate" in _first_fail(source, bad, capsys)


def test_a_changed_head_weight_is_named_first(pair, tmp_path, capsys):
    from onnx import numpy_helper

    source, export = pair

    def edit(model):
        gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
        tensor = next(t for t in model.graph.initializer if t.name == gemm.input[1])
        value = numpy_helper.to_array(tensor).copy()
        value.flat[1] *= 1.001
        tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))

    first = _first_fail(source, _edited(export, tmp_path / "h.onnx", edit), capsys)
    assert "weights head.W" in first, first


def test_a_head_with_another_activation_is_named(pair, tmp_path, capsys):
    from onnx import helper

    source, export = pair

    def edit(model):
        gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
        out = gemm.output[0]
        gemm.output[0] = out + "_logits"
        model.graph.node.append(helper.make_node("Sigmoid", [out + "_logits"], [out]))

    first = _first_fail(source, _edited(export, tmp_path / "s.onnx", edit), capsys)
    assert "head computes sigmoid where the source's computes none" in first, first


def test_a_native_node_with_another_activation_is_named(pair, tmp_path, capsys):
    from onnx import helper

    source, export = pair

    def edit(model):
        node = next(n for n in model.graph.node if n.op_type == "GRU")
        node.attribute.append(helper.make_attribute("activations", ["Sigmoid", "Relu"]))

    first = _first_fail(source, _edited(export, tmp_path / "a.onnx", edit), capsys)
    assert "sets activations ['sigmoid', 'relu'] where a gru computes" in first, first


def test_a_loop_body_with_another_activation_is_named(tmp_path, capsys):
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")
    model = make.keras_model("gru", H=6, head=3, activation="linear", seed=2)
    model.save(tmp_path / "k.keras")
    export = make.export_tf2onnx(model, tmp_path / "k.onnx")

    def edit(onnx_model):
        def swap(graph):
            for node in graph.node:
                if node.op_type == "Tanh":
                    node.op_type = "Relu"
                    return True
                if any(a.HasField("g") and swap(a.g) for a in node.attribute):
                    return True
            return False

        assert swap(onnx_model.graph)

    first = _first_fail(tmp_path / "k.keras", _edited(export, tmp_path / "r.onnx", edit), capsys)
    assert "Loop body) computes Relu" in first and "an activation differs" in first, first
