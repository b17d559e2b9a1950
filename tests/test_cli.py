"""The rnnbench command: tables, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
import re

import pytest

from harness.cli.main import main


def test_parity_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "parity.json"
    code = main(
        [
            "parity",
            "--cells",
            "gru",
            "--backends",
            "numpy,torch-cpu",
            "--dtype",
            "float64",
            "--no-training",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "grad weights" in printed and "passed" in printed
    record = json.loads(out.read_text())
    assert record["schema_version"] == 2 and record["passed"] is True
    backends = {r["backend"] for r in record["results"]}
    assert "numpy" in backends
    assert all(r["status"] in ("passed", "skipped") for r in record["results"])
    rows = [r for r in record["summary"] if r["backend"] == "numpy" and r["quantity"] == "y"]
    assert rows and rows[0]["max_abs"] < 1e-12


def test_failure_exits_1_and_names_the_tensor(monkeypatch, capsys):
    from backends import numpy_backend

    original = numpy_backend.PreparedNumpy.forward

    def off(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out.h_n = out.h_n + 1e-4
        return out

    monkeypatch.setattr(numpy_backend.PreparedNumpy, "forward", off)
    code = main(
        ["parity", "--cells", "rnn", "--backends", "numpy", "--dtype", "float64", "--no-training"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert re.search(
        r"FAIL numpy rnn-L1-uni-full-float64: h_n: at index \(\d+, \d+, \d+\): "
        r"-?[\d.e+-]+ vs reference -?[\d.e+-]+ \(\|diff\|",
        err,
    )


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["parity", "--backends", "numpy,jax"],
            "unknown backend 'jax': allowed numpy, cupy, torch-cpu",
        ),
        (["parity", "--cells", "lstm,transformer"], "unknown cell 'transformer': allowed rnn,"),
        (["parity", "--weights", "w.npz"], "--weights needs --spec"),
        (["error-growth", "--backends", "nope"], "unknown backend 'nope'"),
    ],
)
def test_bad_arguments_give_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_spec_and_weights_files(tmp_path, capsys):
    spec = tmp_path / "model.toml"
    spec.write_text('[model]\ncell = "lstm"\ninput_size = 3\nhidden_size = 0\n')
    assert main(["parity", "--spec", str(spec)]) == 2
    assert "ModelSpec.hidden_size = 0 is invalid" in capsys.readouterr().err
    spec.write_text('[model]\ncell = "lstm"\ninput_size = 3\nhidden_size = 4\n')
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"not a zip")
    assert main(["parity", "--spec", str(spec), "--weights", str(weights)]) == 2
    assert "is not a readable .npz" in capsys.readouterr().err


def test_spec_and_weights_files_drive_the_check(tmp_path, capsys):
    from harness.model.spec import Head, ModelSpec, save_spec
    from harness.model.weights import init_weights, save_weights

    spec = ModelSpec("lstm", 3, 4, bidirectional=True, head=Head(2))
    save_spec(spec, tmp_path / "m.toml")
    save_weights(init_weights(spec, seed=11), tmp_path / "w.npz")
    argv = ["parity", "--spec", str(tmp_path / "m.toml"), "--weights", str(tmp_path / "w.npz")]
    assert main([*argv, "--backends", "numpy,torch-cpu", "--no-training"]) == 0
    # the cases run on the file's weights, not on a seeded init
    from harness.model.spec import load_spec
    from harness.parity.cases import case_data, model_cases

    cases = model_cases(load_spec(tmp_path / "m.toml"), str(tmp_path / "w.npz"), ("float32",))
    used, _ = case_data(cases[0])
    assert used.astype("float32").digest() == init_weights(spec, seed=11).digest()
    # 2 dtypes x {with, without sequence_lens} x 2 backends
    assert "8 of 8 backend x case checks passed" in capsys.readouterr().out


def test_error_growth_table(tmp_path, capsys):
    out = tmp_path / "growth.json"
    assert (
        main(
            [
                "error-growth",
                "--cells",
                "rnn",
                "--backends",
                "numpy",
                "--gain",
                "4",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["error_growth"]
    by_T = {r["T"]: r["max_abs_y"] for r in rows}
    # float32 rounding is ~1e-7 at one step; a chaotic SimpleRNN (gain 4) amplifies it to O(1).
    assert by_T[1] < 1e-6
    assert by_T[1000] > 1e-2


def test_a_run_that_compares_nothing_fails(capsys):
    from harness import registry

    if not registry.unavailable_reason("ort-direct-tensorrt"):
        pytest.skip("this machine has ONNX Runtime's TensorRT provider")
    assert (
        main(["parity", "--cells", "rnn", "--backends", "ort-direct-tensorrt", "--no-training"])
        == 1
    )
    assert "nothing was compared" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_base_install_is_told_which_extra_to_install(command, monkeypatch, tmp_path, capsys):
    """Without the report's libraries (a base install) report and compare say in one line what
    to install, and write nothing."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real(name, *a)
    )
    files = ["a.json", "b.json"] if command == "compare" else ["a.json", "--out", str(tmp_path)]
    assert main([command, *files]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rnnbench: error: rnnbench {command} needs scipy, not installed: " + (
        "pip install 'rnnbench[report]'"
    )
    assert list(tmp_path.iterdir()) == []
