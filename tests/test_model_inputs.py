"""Inputs that exercise what the model does: a Keras Masking or Embedding front end is read and
computed by the reference, padded batches of varied lengths and tokens across the vocabulary
are fed, an export that drops the Masking layer fails saying so, and --inputs works for a Keras
source (and runs its export), refusing bad values as bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from harness.cli.main import main
from harness.model_file import front as fronts
from tests import model_files as make

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def test_padding_mask_holds_every_pattern():
    mask = fronts.padding_mask(20, 5, np.random.default_rng(0))
    assert mask[:, 0].all()  # one sample at full length
    after, before, gap = mask[:, 1], mask[:, 2], mask[:, 3]
    assert after[0] and not after[-1] and (np.diff(after.astype(int)) <= 0).all()
    assert not before[0] and before[-1] and (np.diff(before.astype(int)) >= 0).all()
    assert gap[0] and gap[-1] or not gap.all()
    assert fronts.padding_mask(1, 3, np.random.default_rng(0)).all()


def test_draws_share_their_steps_across_sizes():
    front = fronts.FrontEnd(np.arange(12.0).reshape(6, 2))
    short = fronts.draw(front, 2, 5, 2, seed=3)
    long_ = fronts.draw(front, 2, 9, 3, seed=3)
    np.testing.assert_array_equal(long_.file_input[:5, :2], short.file_input)
    assert {0, 5} <= set(np.unique(long_.file_input))  # both ends of the vocabulary
    plain = fronts.draw(fronts.PLAIN, 4, 6, 2, seed=1)
    np.testing.assert_array_equal(fronts.draw(fronts.PLAIN, 4, 3, 1, seed=1).x, plain.x[:3, :1])


def test_compress_and_spread_are_keras_masking():
    """A masked step keeps the state: the reference on each sample's valid steps, its outputs
    spread back, repeat the last output forward and the next one backward (or zeros)."""
    mask = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], bool)
    x = np.arange(8.0).reshape(4, 2, 1)
    compressed, lens, _ = fronts.compress(x, mask)
    assert list(lens) == [2, 2]
    assert compressed[:2, 0, 0].tolist() == [0.0, 4.0] and compressed[:2, 1, 0].tolist() == [
        3.0,
        5.0,
    ]
    y_c = np.zeros((4, 2, 2))
    y_c[:2, :, 0] = [[10, 20], [11, 21]]  # forward output at compressed steps
    y_c[:2, :, 1] = [[30, 40], [31, 41]]  # backward
    y = fronts.spread(y_c, mask, 2, zero=False)
    assert y[:, 0, 0].tolist() == [10, 10, 11, 11] and y[:, 1, 0].tolist() == [0, 20, 21, 21]
    assert y[:, 0, 1].tolist() == [30, 31, 31, 0] and y[:, 1, 1].tolist() == [40, 40, 41, 0]
    zero = fronts.spread(y_c, mask, 2, zero=True)
    assert zero[:, 0, 0].tolist() == [10, 0, 11, 0]


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")
    folder = tmp_path_factory.mktemp("masked")
    model = make.keras_front("lstm", front="masking", layers=2, seed=3)
    model.save(folder / "m.keras")
    faithful = make.export_tf2onnx(model, folder / "m.onnx")
    dropped = make.export_tf2onnx(make.keras_without_front(model), folder / "nomask.onnx")
    return folder / "m.keras", faithful, dropped, folder


def _parity(*argv):
    return main(["parity", *map(str, argv), "--backends", "numpy"])


def test_a_masking_source_and_its_faithful_export_pass(masked, capsys):
    source, faithful, _, _ = masked
    assert _parity("--model", source, "--against", faithful) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "masking steps equal to 0" in out


def test_an_export_without_the_masking_layer_fails_saying_so(masked, capsys):
    source, _, dropped, _ = masked
    assert _parity("--model", source, "--against", dropped) == 1
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if line.startswith("FAIL"))
    assert "right on unpadded inputs but wrong on padded ones" in first, err


def test_inputs_for_a_keras_source_run_both_files(masked, capsys):
    source, faithful, dropped, folder = masked
    x = np.random.default_rng(1).standard_normal((3, 11, 5)).astype(np.float32)
    x[1, 7:] = 0.0  # padded after
    x[2, :4] = 0.0  # padded before
    np.savez(folder / "padded.npz", x=x)
    assert _parity("--model", source, "--against", faithful, "--inputs", folder / "padded.npz") == 0
    out = capsys.readouterr().out
    assert "on padded.npz" not in out or "FAIL" not in out
    assert _parity("--model", source, "--against", dropped, "--inputs", folder / "padded.npz") == 1
    err = capsys.readouterr().err
    assert "export-file on padded.npz" in err, err


@pytest.mark.parametrize(
    "value, said",
    [
        (np.full((2, 4, 5), np.nan, np.float32), "holds value nan at index (0, 0, 0)"),
        (np.zeros((2, 0, 5), np.float32), "no steps or no samples"),
        (np.zeros((2, 4, 5), np.int64), "is int64 [2, 4, 5]: allowed float [B, T, 5]"),
        (np.zeros((2, 4, 3), np.float32), "is float32 [2, 4, 3]: allowed float [B, T, 5]"),
    ],
)
def test_bad_inputs_are_bad_input_naming_it(masked, value, said, capsys):
    source, _, _, folder = masked
    path = folder / "bad.npz"
    np.savez(path, x=value)
    assert _parity("--model", source, "--inputs", path) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")
    folder = tmp_path_factory.mktemp("embedded")
    model = make.keras_front("gru", front="embedding-mask", V=40, seed=4)
    model.save(folder / "e.keras")
    return folder / "e.keras", make.export_tf2onnx_tokens(model, folder / "e.onnx"), folder


def test_an_embedding_source_is_read_and_checked_with_tokens(embedded, capsys):
    source, export, folder = embedded
    assert _parity("--model", source, "--against", export) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "embedding 40 x 5 (integer tokens in), token 0 masked" in out
    tokens = np.random.default_rng(2).integers(1, 40, (2, 9))
    tokens[1, 6:] = 0
    np.savez(folder / "t.npz", tokens=tokens)
    assert _parity("--model", source, "--inputs", folder / "t.npz") == 0
    np.savez(folder / "far.npz", tokens=tokens + 40)
    assert _parity("--model", source, "--inputs", folder / "far.npz") == 2
    assert "allowed integer tokens [B, T] in [0, 40)" in capsys.readouterr().err
