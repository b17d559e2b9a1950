"""`rnnbench parallel-in-time` end to end: JSON record, exit codes, inputs from files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli.main import main
from harness.model.spec import ModelSpec, save_spec
from harness.model.weights import init_weights, save_weights
from harness.records.parallel_in_time import SolveDocument


def _run(tmp_path, capsys, *argv):
    out = tmp_path / "parallel-in-time.json"
    code = main(["parallel-in-time", *argv, "--json", str(out)])
    captured = capsys.readouterr()
    return code, (json.loads(out.read_text()) if out.exists() else None), captured


def test_generated_model_converges_and_writes_the_record(tmp_path, capsys):
    code, record, captured = _run(
        tmp_path, capsys, "--cell", "gru", "--hidden", "16", "--steps", "300", "--batch", "2"
    )
    assert code == 0, captured.err
    assert record["converged"] is True and 3 <= record["iterations"] <= 6
    assert record["method"] == "newton" and record["tol"] == 1e-12 and record["dtype"] == "float64"
    assert -1.0 < record["lle"] < -0.1 and record["lle_of"] == "layer 0, forward direction"
    assert len(record["residuals"]) == record["iterations"] and record["residuals"][-1] <= 1e-12
    assert record["max_abs_error"] < 1e-12 and all(c["passed"] for c in record["parity"])
    assert {c["quantity"] for c in record["parity"]} == {"y", "h_n"}
    assert "parity passed" in captured.out and "Lyapunov" in captured.out
    assert SolveDocument.model_validate(record).solves[0].converged  # the record reads back


def test_spec_weights_and_inputs_from_files(tmp_path, capsys):
    spec = ModelSpec("lstm", 3, 8, num_layers=2, bidirectional=True)
    save_spec(spec, tmp_path / "m.toml")
    save_weights(init_weights(spec, seed=4), tmp_path / "w.npz")
    x = np.random.default_rng(0).standard_normal((60, 2, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "h0.npy", 0.3 * np.ones((4, 2, 8)))
    code, record, captured = _run(
        tmp_path,
        capsys,
        "--spec",
        str(tmp_path / "m.toml"),
        "--weights",
        str(tmp_path / "w.npz"),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--h0",
        str(tmp_path / "h0.npy"),
        "--method",
        "quasi-newton",
        "--framework",
        "torch",
    )
    assert code == 0, captured.err
    assert record["steps"] == 60 and record["batch"] == 2 and record["framework"] == "torch"
    assert len(record["solves"]) == 4 and record["iterations"] == max(
        s["iterations"] for s in record["solves"]
    )
    assert {c["quantity"] for c in record["parity"]} == {"y", "h_n", "c_n"}
    assert record["max_abs_error"] < 1e-10


def test_onnx_file_with_native_nodes(tmp_path, capsys):
    pytest.importorskip("onnx")
    from backends.onnx_export import export

    spec = ModelSpec("gru", 4, 8)
    export("direct", spec, init_weights(spec, seed=2), tmp_path / "m.onnx")
    code, record, captured = _run(
        tmp_path, capsys, "--onnx", str(tmp_path / "m.onnx"), "--steps", "50", "--dtype", "float32"
    )
    assert code == 0, captured.err
    assert record["model"]["cell"] == "gru" and record["model"]["hidden_size"] == 8
    assert record["dtype"] == "float32" and record["tol"] == 1e-6 and record["converged"]


def test_chaotic_model_is_reported_not_converged(tmp_path, capsys):
    code, record, captured = _run(
        tmp_path,
        capsys,
        "--cell",
        "rnn",
        "--hidden",
        "32",
        "--input",
        "32",
        "--gain",
        "6",
        "--steps",
        "300",
        "--max-iter",
        "40",
    )
    assert code == 1
    assert record["lle"] > 0 and record["converged"] is False and record["iterations"] is None
    assert "max_iter = 40" in record["reason"] and len(record["residuals"]) == 40
    assert captured.err.startswith("FAIL not converged: layer 0 forward: reached max_iter")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--method", "deer"], "--method deer: allowed newton, quasi-newton"),
        (["--tol", "-1"], "--tol -1: allowed a finite number >= 0"),
        (["--tol", "nan"], "--tol nan: allowed a finite number >= 0"),
        (["--max-iter", "0"], "--max-iter 0: allowed an integer >= 1"),
        (["--steps", "ten"], "--steps ten: allowed an integer >= 1"),
        (["--dtype", "float16"], "--dtype float16: allowed float64, float32"),
        (["--cell", "transformer"], "--cell transformer: allowed rnn, lstm, gru"),
        (["--hidden", "0"], "--hidden 0: allowed an integer >= 1"),
        (["--weights", "w.npz"], "--weights goes with --spec alone"),
        (["--onnx", "m.onnx", "--cell", "gru"], "--model and --cell both name a model"),
        (["--inputs", "missing.npy"], "--inputs missing.npy: not a readable .npy file"),
        (["--c0", "c.npy"], "--c0 is for an LSTM; this model is gru"),
        (["--device", "tpu"], "--device tpu: allowed cpu, cuda"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main(["parallel-in-time", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("rnnbench: error: ")


def test_bad_inputs_files(tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((5, 2, 7)))
    bad = np.zeros((5, 2, 8))
    bad[1, 1, 1] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    for name, message in (("wrong", "expected [T, B, I] with I = 8"), ("inf", "non-finite")):
        code = main(["parallel-in-time", "--inputs", str(tmp_path / f"{name}.npy")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1
    np.save(tmp_path / "x.npy", np.zeros((5, 2, 8)))
    assert main(["parallel-in-time", "--inputs", str(tmp_path / "x.npy"), "--steps", "9"]) == 2
    assert "drop --steps/--batch" in capsys.readouterr().err
