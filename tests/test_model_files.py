"""`--model FILE` for torch and Keras files made by the tests themselves: every accepted form is
read into the spec it is and passes `rnnbench parity --model` (the file run as it is and the
backends rebuilt from its weights); every refused form is one line naming what is allowed."""

from __future__ import annotations

import pytest

from harness.cli.main import main
from harness.model.protocol import NotSupported
from tests import model_files as make


def _parity(path, *extra):
    return main(["parity", "--model", str(path), "--backends", "numpy", *extra])


def _file_row(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("model-file"))


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed")


def _keras():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")


TORCH_FORMS = {
    "scripted-gru-head-softmax": (make.save_scripted, {"cell": "gru", "softmax": True}),
    "scripted-lstm-bi-L2": (
        make.save_scripted,
        {"cell": "lstm", "layers": 2, "bidirectional": True},
    ),
    "scripted-rnn-time-major-no-head": (
        make.save_scripted,
        {"cell": "rnn", "batch_first": False, "head": 0},
    ),
    "traced-lstm-last-step": (make.save_traced, {"cell": "lstm", "last_step": True}),
    "traced-gru-bi-no-bias": (
        make.save_traced,
        {"cell": "gru", "bidirectional": True, "bias": False},
    ),
    "exported-program-gru-L2": (make.save_exported_program, {"cell": "gru", "layers": 2}),
    "exported-program-lstm-bi-softmax": (
        make.save_exported_program,
        {"cell": "lstm", "bidirectional": True, "softmax": True},
    ),
}


@pytest.mark.parametrize("form", list(TORCH_FORMS))
def test_torch_forms_are_read_and_pass(form, tmp_path, capsys):
    _torch()
    save, options = TORCH_FORMS[form]
    net = make.torch_net(**options, seed=len(form))
    path = save(net, tmp_path / "model.pt")
    assert _parity(path) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert _file_row(out).endswith("passed"), out
    kind = "exported-program" if form.startswith("exported") else "torchscript"
    assert f"({kind})" in out.splitlines()[0]
    cell = options["cell"].upper()
    assert cell in out.splitlines()[0] and f"L={options.get('layers', 1)}" in out, out


@pytest.mark.parametrize("save", ["script", "trace"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_bare_recurrent_module_saved_as_torchscript_passes(save, cell, tmp_path, capsys):
    """torch.jit.save of nn.LSTM / nn.GRU itself (no wrapper Module): the file's own module is
    the recurrence, and a scripted one has forward overloads (tensor, PackedSequence)."""
    torch = _torch()
    torch.manual_seed(3)
    bare = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](4, 6, bidirectional=True).eval()
    module = (
        torch.jit.script(bare) if save == "script" else torch.jit.trace(bare, torch.randn(5, 2, 4))
    )
    path = tmp_path / "bare.pt"
    torch.jit.save(module, str(path))
    assert _parity(path) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert _file_row(out).endswith("passed"), out
    assert cell.upper() in out.splitlines()[0] and "its own module" in out, out


def test_a_state_dict_needs_its_spec(tmp_path, capsys):
    _torch()
    from harness.model.spec import Head, ModelSpec, save_spec

    net = make.torch_net("lstm", layers=2, head=3)
    path = make.save_state_dict(net, tmp_path / "weights.pt")
    assert _parity(path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a state_dict" in err and "--spec" in err, err
    spec = ModelSpec("lstm", 4, 6, num_layers=2, batch_first=True, head=Head(3))
    save_spec(spec, tmp_path / "spec.toml")
    assert _parity(path, "--spec", str(tmp_path / "spec.toml")) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "(state-dict)" in out and not any(r.startswith("model-file") for r in out.splitlines())
    wrong = spec.replace(num_layers=3)
    save_spec(wrong, tmp_path / "wrong.toml")
    assert _parity(path, "--spec", str(tmp_path / "wrong.toml")) == 2
    assert "does not fit the spec" in capsys.readouterr().err


def test_a_pickled_module_is_refused_not_unpickled(tmp_path, capsys):
    _torch()
    import torch

    torch.save(torch.nn.GRU(3, 4), tmp_path / "whole.pt")  # a pickle of a module: code, not data
    assert _parity(tmp_path / "whole.pt") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "allowed TorchScript" in err, err


def test_torch_modules_beyond_a_recurrent_model_are_named(tmp_path, capsys):
    _torch()
    import torch
    from torch import nn

    class WithConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 4, 3, padding=1)
            self.rnn = nn.GRU(4, 6, batch_first=True)

        def forward(self, x):
            return self.rnn(self.conv(x.transpose(1, 2)).transpose(1, 2))[0]

    torch.jit.save(torch.jit.script(WithConv()), str(tmp_path / "conv.pt"))
    assert _parity(tmp_path / "conv.pt") == 2
    err = capsys.readouterr().err
    assert "module 'conv' is a Conv1d: allowed one nn.Embedding first, nn.RNN/LSTM/GRU" in err, err


KERAS_FORMS = {
    "sequential-srnn-softmax": {"kind": "rnn", "functional": False},
    "functional-gru-bi-L2-dropout": {
        "kind": "gru",
        "bidirectional": True,
        "layers": 2,
        "dropout": True,
        "activation": None,
    },
    "functional-lstm-sequences": {"kind": "lstm", "head": 0, "return_sequences": True},
    "functional-gru-reset-after-false": {"kind": "gru", "reset_after": False, "head": 0},
}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("form", list(KERAS_FORMS))
def test_keras_forms_are_read_and_pass(form, suffix, tmp_path, capsys):
    _keras()
    model = make.keras_model(**KERAS_FORMS[form], seed=len(form))
    path = tmp_path / f"model{suffix}"
    model.save(path)
    assert _parity(path, "--backends", "numpy,tf-eager") == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert _file_row(out).endswith("passed"), out
    if not KERAS_FORMS[form].get("reset_after", True):
        assert "linear_before_reset=0" in out.splitlines()[0], out


@pytest.mark.parametrize(
    "build,words",
    [
        (
            lambda k: k.Sequential([k.Input((None, 3)), k.layers.Conv1D(4, 2), k.layers.GRU(5)]),
            "is a Conv1D: allowed an Embedding or Masking first, SimpleRNN, LSTM, GRU",
        ),
        (
            lambda k: k.Sequential([k.Input((None, 3)), k.layers.SimpleRNN(5, activation="relu")]),
            "uses activation='relu': allowed 'tanh'",
        ),
        (
            lambda k: k.Sequential([k.Input((None, 3)), k.layers.GRU(5, go_backwards=True)]),
            "sets go_backwards=True",
        ),
        (
            lambda k: k.Sequential(
                [k.Input((None, 3)), k.layers.LSTM(5, return_sequences=True), k.layers.Dense(2)]
            ),
            "reads every step",
        ),
        (
            lambda k: k.Sequential(
                [k.Input((None, 3)), k.layers.GRU(5), k.layers.Dense(2, activation="relu")]
            ),
            "activation 'relu': allowed linear, softmax",
        ),
    ],
)
def test_keras_forms_beyond_a_recurrent_model_are_named(build, words, tmp_path, capsys):
    _keras()
    import keras

    path = tmp_path / "m.keras"
    build(keras).save(path)
    assert _parity(path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def test_keras_model_read_equals_its_weights(tmp_path):
    """The reading itself: canonical weights that make the reference equal the Keras model."""
    _keras()
    import numpy as np

    from harness.model_file.model import open_model
    from harness.model_file.reference import reference

    model = make.keras_model("lstm", bidirectional=True, layers=2, head=4, seed=3)
    model.save(tmp_path / "m.keras")
    opened = open_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).standard_normal((6, 2, 5))
    ref = reference(opened.weights, opened.direction, (), x, {})
    got = model(x.transpose(1, 0, 2).astype("float32"), training=False)
    np.testing.assert_allclose(np.asarray(got), ref["head"], atol=2e-6)


@pytest.mark.parametrize(
    "content,suffix,words",
    [
        (b"just text", ".bin", "not a model file rnnbench reads"),
        (b"\x00\x01garbage", ".onnx", "is not a readable ONNX model"),
    ],
)
def test_anything_else_is_one_line_naming_the_accepted_forms(
    content, suffix, words, tmp_path, capsys
):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(content)
    assert _parity(path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Keras .keras or .h5, TorchScript" in err, err


def test_a_missing_file_is_one_line(tmp_path, capsys):
    assert _parity(tmp_path / "nope.onnx") == 2
    assert "no such file" in capsys.readouterr().err


def test_open_model_refuses_spec_for_files_that_say_what_they_are(tmp_path):
    _torch()
    from harness.model.spec import ModelSpec
    from harness.model_file.model import open_model

    path = make.save_scripted(make.torch_net("gru"), tmp_path / "m.pt")
    with pytest.raises(NotSupported, match="--spec is for a state_dict"):
        open_model(path, ModelSpec("gru", 4, 6))
