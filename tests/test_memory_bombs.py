"""Issue 25: tiny files that declare or inflate to gigabytes (tests/bomb_files.py), each run
through `rnnbench parity` in its own process: refused in one line (exit 2) naming the tensor,
member or input and the budget, the process's peak RSS far below the bomb. And an honest
model is held to --memory-budget as it says."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnbench[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from harness.cli.main import main  # noqa: E402
from harness.files import limits  # noqa: E402
from harness.onnx.reader import read_onnx  # noqa: E402
from tests import bomb_files as make  # noqa: E402
from tests.peak_rss import run_measured  # noqa: E402

GiB = 2**30
ROOT = Path(__file__).resolve().parents[1]
BUDGET = ["--memory-budget", "1G"]
PARITY = ["parity", "--backends", "numpy", "--dtype", "float32", "--no-training"]


def rnnbench(*argv: str) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in bytes) of `rnnbench argv` in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != limits.ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return run_measured([sys.executable, "-m", "harness", *argv], env)


def refused(result, *words: str) -> str:
    """The one-line refusal, having checked exit 2, its words and a peak RSS under 1.5 GiB."""
    code, err, rss = result
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rnnbench: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert rss < 1.5 * GiB, f"peak RSS {rss / GiB:.2f} GiB"
    return lines[0]


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    return make.honest_node_file(tmp_path_factory.mktemp("honest") / "lstm.onnx", H=4)


def test_an_unused_constant_of_shape_never_reaches_onnx_runtime(tmp_path, honest):
    bomb = tmp_path / "unused.onnx"
    make.onnx_unused_bomb(bomb)  # 4 GiB, beside a W folded from a Concat
    assert bomb.stat().st_size < 4096
    words = ("'bomb'", "ConstantOfShape", "[32768, 32768] float", "4.0 GiB", "1.0 GiB")
    refused(rnnbench(*PARITY, "--model", str(bomb), *BUDGET), *words)
    refused(rnnbench(*PARITY, "--model", str(honest), "--against", str(bomb), *BUDGET), *words)


def test_w_is_folded_from_the_nodes_it_needs_alone(tmp_path):
    small = tmp_path / "small.onnx"
    weights = make.onnx_unused_bomb(small, side=2)
    imported = read_onnx(small)
    np.testing.assert_array_equal(imported.weights["l0.W"], weights["W"])
    assert any("folded from a constant subgraph (Concat)" in n for n in imported.notes)


def test_folding_a_weight_out_of_a_bomb_is_refused_before_it_is_computed(tmp_path):
    bomb = tmp_path / "folded.onnx"
    make.onnx_folded_bomb(bomb)
    refused(
        rnnbench(*PARITY, "--model", str(bomb), *BUDGET),
        "'bomb', computed by ConstantOfShape node 'bomb'",
        "[32768, 32768]",
        "1.0 GiB",
    )


def test_a_fold_whose_size_cannot_be_told_is_not_folded(tmp_path, capsys):
    path = tmp_path / "range.onnx"
    make.onnx_unbounded_fold(path)
    assert main([*PARITY, "--model", str(path)]) == 2
    message = capsys.readouterr().err.strip()
    assert "W of LSTM node 0 is computed by a constant subgraph that is not folded" in message
    assert "Range node 'ramp'" in message and "whose size cannot be told" in message


@pytest.mark.parametrize(
    "build, words",
    [
        (make.onnx_constant_without_data, ("value of Constant node 'huge'", "4.0 TiB")),
        (make.onnx_subgraph_constant, ("in the then_branch of If node", "[1048576, 1048576]")),
        (make.onnx_declared_T, ("graph input 'X'", "[1099511627776, 2, 3]", "1.0 GiB")),
        (
            make.onnx_subgraph_bomb,
            ("'big', computed by ConstantOfShape node 'inner'", "then_branch of If", "4.0 GiB"),
        ),
    ],
    ids=["constant-without-data", "constant-in-a-subgraph", "T-2**40", "computed-in-a-subgraph"],
)
def test_declared_sizes_are_refused_before_allocating(build, words, tmp_path):
    path = tmp_path / "declared.onnx"
    build(path)
    refused(rnnbench(*PARITY, "--model", str(path), *BUDGET), *words)


def test_external_data_is_never_read(tmp_path, capsys):
    path = tmp_path / "external.onnx"
    make.onnx_external(path, "../../../etc/passwd")
    assert main([*PARITY, "--model", str(path)]) == 2
    message = capsys.readouterr().err
    assert "initializer 'W'" in message and "'../../../etc/passwd'" in message
    assert "allowed a file beside the model, named without a folder" in message


def test_raw_data_shorter_than_its_dims_is_corrupt(tmp_path, capsys):
    path = tmp_path / "short.onnx"
    make.onnx_short_raw_data(path)
    assert main([*PARITY, "--model", str(path)]) == 2
    message = capsys.readouterr().err
    assert "initializer 'R'" in message
    assert "holds 128 bytes of raw data where its dims say 256: the file is corrupt" in message


def test_a_compressed_npz_of_inputs_is_refused_before_inflating(tmp_path, honest):
    bomb = tmp_path / "inputs.npz"
    make.npz_bomb(bomb, "X", (500_000_000, 2, 1))  # 4 GB of float32 zeros
    assert bomb.stat().st_size < 8 * 2**20
    refused(
        rnnbench(*PARITY, "--model", str(honest), "--inputs", str(bomb), *BUDGET),
        "member 'X.npy' of --inputs",
        "3.7 GiB",
        "1.0 GiB",
    )


def test_an_npy_header_is_checked_before_numpy_reads_it(tmp_path, honest):
    lying = tmp_path / "lying.npz"
    make.npz_lying_header(lying, "X", (2**40, 2, 8))
    refused(
        rnnbench(*PARITY, "--model", str(honest), "--inputs", str(lying), *BUDGET),
        "array 'X' of --inputs",
        "[1099511627776, 2, 8] float32",
    )
    make.npz_lying_header(lying, "X", (8,))
    refused(
        rnnbench(*PARITY, "--model", str(honest), "--inputs", str(lying)),
        "says 32 bytes where the member holds 16",
    )


def test_a_tensor_proto_input_declaring_terabytes(tmp_path, honest):
    from onnx import TensorProto

    folder = tmp_path / "data"
    folder.mkdir()
    tensor = TensorProto(name="X", data_type=TensorProto.FLOAT, dims=[2**40, 2, 8])
    (folder / "input_0.pb").write_bytes(tensor.SerializeToString())
    refused(
        rnnbench(*PARITY, "--model", str(honest), "--inputs", str(folder), *BUDGET),
        "tensor 'X' of --inputs",
        "[1099511627776, 2, 8] float",
    )


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((None, 3))
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.LSTM(4)(x)))
    path = tmp_path_factory.mktemp("keras") / "small.keras"
    model.save(path)
    return path


def _config(path) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return archive.read("config.json")


def test_a_rezipped_keras_file_is_read_as_the_original(small_keras, tmp_path):
    from harness.model_file.model import open_model

    copy = tmp_path / "copy.keras"
    make.keras_with_config(small_keras, copy, _config(small_keras))
    original, again = open_model(small_keras), open_model(copy)
    assert again.weights.digest() == original.weights.digest()


def test_an_inflated_keras_config_is_refused_before_keras_reads_it(small_keras, tmp_path):
    bomb = tmp_path / "inflated.keras"
    make.keras_with_config(small_keras, bomb, _config(small_keras), int(1.5 * GiB))
    assert bomb.stat().st_size < 4 * 2**20
    refused(
        rnnbench(*PARITY, "--model", str(bomb), *BUDGET),
        "member 'config.json'",
        "1.5 GiB",
        "1.0 GiB",
    )
    refused(  # within the default budget, over the cap of a config
        rnnbench(*PARITY, "--model", str(bomb)), "member 'config.json'", "over the 16.0 MiB"
    )


@pytest.mark.parametrize(
    "before, after, words",
    [
        (b'"units": 4', b'"units": 1048576', "the variables of LSTM layer 'lstm"),
        (b'"batch_shape": [null, null, 3]', b'"batch_shape": [null, 1099511627776, 3]', "input "),
    ],
    ids=["units", "input-T"],
)
def test_a_keras_config_implying_terabytes(small_keras, tmp_path, before, after, words):
    from harness.files.limits import Refused
    from harness.model_file.model import open_model

    config = _config(small_keras).replace(before, after)
    assert config != _config(small_keras)
    bomb = tmp_path / "wide.keras"
    make.keras_with_config(small_keras, bomb, config)
    with pytest.raises(Refused, match="TiB, over the memory budget") as refusal:
        open_model(bomb)
    assert words in str(refusal.value) and "in the model config of" in str(refusal.value)


def test_an_h5_dataset_declaring_gigabytes_is_refused_unread(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed")
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as handle:  # never written: 16 GiB of fill value
        handle.create_dataset("w", shape=(2**16, 2**16), dtype="f4", chunks=(256, 256))
    assert path.stat().st_size < 2**20
    refused(
        rnnbench(*PARITY, "--model", str(path), *BUDGET),
        "dataset '/w'",
        "[65536, 65536] float32",
        "16.0 GiB",
    )


def test_an_h5_link_to_another_file_is_refused(tmp_path, capsys):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed")
    path = tmp_path / "linked.h5"
    with h5py.File(path, "w") as handle:
        handle["weights"] = h5py.ExternalLink("/etc/hostname", "/w")
    assert main([*PARITY, "--model", str(path)]) == 2
    message = capsys.readouterr().err
    assert "/weights links to another file ('/etc/hostname')" in message


def test_a_parallel_in_time_npy_is_checked_before_numpy_reads_it(tmp_path, capsys):
    path = tmp_path / "x.npy"
    header = make.npy_header((2**40, 1, 8), np.dtype("float64"))
    path.write_bytes(header + bytes(64))
    assert main(["parallel-in-time", "--cell", "gru", "--input", "8", "--inputs", str(path)]) == 2
    message = capsys.readouterr().err
    assert f"--inputs {path} [1099511627776, 1, 8] float64 needs 64.0 TiB" in message


def test_the_budget_refuses_an_honest_model_over_it_and_accepts_it_under(tmp_path):
    path = tmp_path / "honest.onnx"
    make.honest_lstm(path, H=360)
    assert 1.5 * 2**20 < path.stat().st_size < 3 * 2**20
    refused(rnnbench(*PARITY, "--model", str(path), "--memory-budget", "1M"), "1.0 MiB")
    code, err, _ = rnnbench(*PARITY, "--model", str(path), "--memory-budget", "2G")
    assert code == 0, err


def test_a_bad_budget_is_a_usage_error(honest, capsys):
    assert main([*PARITY, "--model", str(honest), "--memory-budget", "2X"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rnnbench: error: --memory-budget 2X: allowed bytes with an optional K, M, G or T "
        "suffix (binary), e.g. 2G or 512M"
    )


def test_a_long_identity_chain_is_read_as_the_model_it_holds(tmp_path):
    from harness.model_file.check import check_file

    path = tmp_path / "chain.onnx"
    weights = make.identity_chain(path, 3000)
    imported = read_onnx(path)
    assert imported.x_input == "X" and not imported.batch_major
    np.testing.assert_array_equal(imported.weights["l0.W"], weights["W"])
    np.testing.assert_array_equal(imported.weights["l0.R"], weights["R"])
    np.testing.assert_array_equal(imported.weights["l0.Rb"], weights["B"][:, 16:])
    assert check_file(path).status == "passed"
