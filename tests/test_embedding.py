"""The most common recurrent model, nn.Embedding -> LSTM/GRU -> Linear (and Keras's Embedding),
checked end to end in every torch form: TorchScript, an ExportedProgram and a state_dict with a
spec, each against its ONNX export, fed integer tokens across the vocabulary; the table is one
more weight compared, and nothing of the file is dropped."""

from __future__ import annotations

import pytest

from harness.cli.main import main
from tests import model_files as make


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("onnx", reason="onnx is not installed")
    import torch

    folder = tmp_path_factory.mktemp("classifier")
    net = make.torch_embedding_net("gru", seed=5)
    make.save_scripted(net, folder / "c.pt")
    program = torch.export.export(
        net, (make.example_tokens(net),), dynamic_shapes=({0: torch.export.Dim("B")},)
    )
    torch.export.save(program, str(folder / "c.pt2"))
    torch.save(net.state_dict(), folder / "c.pth")
    (folder / "c.toml").write_text(
        'cell = "gru"\ninput_size = 6\nhidden_size = 8\nbatch_first = true\n[head]\nunits = 3\n'
    )
    make.export_onnx_tokens(net, folder / "c.onnx")
    return folder


def _parity(*argv):
    return main(["parity", *map(str, argv), "--backends", "numpy"])


@pytest.mark.parametrize("source", ["c.pt", "c.pt2", "c.pth"])
def test_every_torch_form_passes_against_its_export(classifier, source, capsys):
    spec = ("--spec", classifier / "c.toml") if source.endswith(".pth") else ()
    code = _parity("--model", classifier / source, *spec, "--against", classifier / "c.onnx")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "embedding 50 x 6 (integer tokens in)" in out.splitlines()[0], out
    weights = next(line for line in out.splitlines() if "file weights" in line)
    assert "13 of 13 weights matched" in weights, weights  # 12 of the GRU and head, the table


def test_the_onnx_export_alone_is_read_with_its_embedding(classifier, capsys):
    assert _parity("--model", classifier / "c.onnx") == 0
    assert "embedding 50 x 6 (integer tokens in)" in capsys.readouterr().out


def test_a_changed_table_element_is_named(classifier, tmp_path, capsys):
    from onnx import load, numpy_helper, save

    model = load(str(classifier / "c.onnx"))
    gather = next(n for n in model.graph.node if n.op_type == "Gather")
    table = next(t for t in model.graph.initializer if t.name == gather.input[0])
    value = numpy_helper.to_array(table).copy()
    value[7, 2] *= 1.001
    table.CopyFrom(numpy_helper.from_array(value, table.name))
    save(model, str(tmp_path / "bad.onnx"))
    assert _parity("--model", classifier / "c.pt", "--against", tmp_path / "bad.onnx") == 1
    first = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("FAIL"))
    assert "weights embedding: at index (7, 2)" in first, first


def test_a_state_dict_with_what_the_spec_does_not_say_is_refused(classifier, tmp_path, capsys):
    import torch

    state = torch.load(classifier / "c.pth", weights_only=True)
    state["norm.weight"] = torch.ones(8)
    torch.save(state, tmp_path / "extra.pth")
    assert _parity("--model", tmp_path / "extra.pth", "--spec", classifier / "c.toml") == 2
    err = capsys.readouterr().err
    assert "'norm.weight' [8], which the spec does not account for" in err, err


def test_an_embedding_the_forward_never_calls_is_refused(tmp_path, capsys):
    pytest.importorskip("torch", reason="torch is not installed")
    net = make.torch_net("gru", H=6, seed=2)
    import torch

    net.emb = torch.nn.Embedding(10, 4)  # registered after the GRU: not a front end
    make.save_scripted(net, tmp_path / "odd.pt")
    assert _parity("--model", tmp_path / "odd.pt") == 2
    assert "module 'emb' is a Embedding" in capsys.readouterr().err
