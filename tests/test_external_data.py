"""An ONNX file whose initializers sit in a file beside it (torch.onnx's dynamo exporter writes
model.onnx.data by default) is read and checked; one that points anywhere else, at a link, or
past the end of its data file is refused in one line, and nothing outside its folder is read."""

from __future__ import annotations

import os

import pytest

from harness.cli.main import main
from tests import bomb_files as make

PARITY = ("parity", "--backends", "numpy")


def _with_sidecar(folder, name="m.onnx"):
    """An LSTM whose initializers onnx saved in m.onnx.data beside it."""
    import onnx

    make.onnx_external(folder / "plain.onnx", "unused")  # the LSTM graph, then saved honestly
    model = onnx.load(str(folder / "plain.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.name == "W":
            from onnx import numpy_helper

            tensor.CopyFrom(numpy_helper.from_array(make.lstm_weights()["W"], "W"))
            del tensor.external_data[:]
            tensor.data_location = 0
    onnx.save(
        model,
        str(folder / name),
        save_as_external_data=True,
        location=f"{name}.data",
        size_threshold=0,
    )
    return folder / name


def test_initializers_in_a_file_beside_the_model_are_read(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    path = _with_sidecar(tmp_path)
    assert (tmp_path / "m.onnx.data").stat().st_size > 0
    assert main([*PARITY, "--model", str(path)]) == 0, capsys.readouterr()


def test_a_sidecar_that_is_a_link_is_refused(tmp_path, capsys):
    path = _with_sidecar(tmp_path)
    data = tmp_path / "m.onnx.data"
    os.rename(data, tmp_path / "elsewhere.data")
    data.symlink_to(tmp_path / "elsewhere.data")
    assert main([*PARITY, "--model", str(path)]) == 2
    assert "not a regular file beside it" in capsys.readouterr().err


def test_a_sidecar_too_short_for_its_tensors_is_corrupt(tmp_path, capsys):
    path = _with_sidecar(tmp_path)
    data = tmp_path / "m.onnx.data"
    data.write_bytes(data.read_bytes()[:10])
    assert main([*PARITY, "--model", str(path)]) == 2
    assert "the file is corrupt" in capsys.readouterr().err


@pytest.mark.parametrize("location", ["/etc/passwd", "../m.onnx.data", "sub/m.onnx.data", ".."])
def test_a_location_outside_the_models_folder_is_refused(tmp_path, location, capsys):
    path = tmp_path / "e.onnx"
    make.onnx_external(path, location)
    assert main([*PARITY, "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert "allowed a file beside the model, named without a folder" in err and err.count("\n") == 1


def test_a_real_dynamo_export_with_its_data_file_passes_against_its_source(tmp_path, capsys):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed")
    from backends.onnx_export import quiet_export
    from tests import model_files

    net = model_files.torch_net("gru", H=6, seed=1)
    source = model_files.save_scripted(net, tmp_path / "g.pt")
    x = model_files.example(net)
    dims = {0: torch.export.Dim("B"), 1: torch.export.Dim("T")}
    with quiet_export():  # the default: external data in g.onnx.data
        torch.onnx.export(net, (x,), str(tmp_path / "g.onnx"), dynamo=True, dynamic_shapes=(dims,))
    if not (tmp_path / "g.onnx.data").exists():
        pytest.skip("this torch keeps the weights inside the file")
    code = main([*PARITY, "--model", str(source), "--against", str(tmp_path / "g.onnx")])
    assert code == 0, capsys.readouterr()
