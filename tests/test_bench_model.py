"""`rnnbench bench --model FILE`: the suite built from a user's file times the file itself and
the backends rebuilt from its weights (each parity-checked first), the product baseline and
parallel in time on its own weights; `rnnbench report` shows them in a Your model section and
prints no section it has no data for."""

from __future__ import annotations

import json

import pytest

from harness.cli.main import main
from tests import onnx_user_files as make

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    pytest.importorskip("torch", reason="torch is not installed")
    folder = tmp_path_factory.mktemp("own")
    path = make.node_file(folder / "my model.onnx", "gru", static=False, H=5, I=3, seed=12)
    out = folder / "bench.json"
    argv = ["bench", "--model", str(path), "--batch", "1", "--steps", "2,4,8"]
    argv += ["--backends", "model-file,numpy,torch-cpu", "--out", str(out)]
    assert main(argv) == 0
    return path, out, folder


def test_the_file_and_its_backends_are_timed_after_parity(timed):
    path, out, _ = timed
    doc = json.loads(out.read_text())
    ok = [r for r in doc["cases"] if r["status"] == "ok"]
    assert len(ok) == len(doc["cases"]) == 3 * 7, [(r["id"], r["reason"]) for r in doc["cases"]]
    backends = {(r["case"]["backend"], r["case"]["mode"]) for r in ok}
    assert backends == {
        ("model-file", "forward"),
        ("numpy", "forward"),
        ("torch-cpu", "forward"),
        ("numpy", "gemm"),
        ("torch-cpu", "gemm"),
        ("torch-cpu", "newton"),
        ("torch-cpu", "quasi-newton"),
    }
    for record in ok:
        assert record["case"]["model"] == "my_model.onnx"
        assert all(c["passed"] for c in record["parity"]), record["parity"]
    file_cases = [r for r in ok if r["case"]["backend"] == "model-file"]
    assert all("my model.onnx as it is (onnx)" in r["impl_class"] for r in file_cases)
    solves = [r["parallel_in_time"] for r in ok if r["case"]["mode"] == "newton"]
    assert all(p["converged"] and p["lle"] < 0 for p in solves), solves
    # each solve predicted before it ran, at its own T
    for record in ok:
        solve = record.get("parallel_in_time")
        if solve:
            assert solve["prediction"]["steps"] == record["case"]["steps"], record["notes"]
            assert solve["prediction"]["method"] == record["case"]["mode"]


def test_the_report_shows_your_model_and_nothing_empty(timed):
    _, out, folder = timed
    assert main(["report", str(out), "--out", str(folder / "report")]) == 0
    text = (folder / "report" / "report.md").read_text()
    assert "## Your model: my_model.onnx on " in text
    assert "**Cost of one step** (latency = a + b*T)" in text
    assert "**Parallel in time on its own weights**" in text
    for absent in (
        "Standard case",
        "Roofline",
        "GRU against minGRU",
        "CPU against GPU",
        "## Plots",
    ):
        assert absent not in text, absent


def test_bench_model_refuses_what_does_not_apply(tmp_path, capsys):
    assert main(["bench", "--batch", "1,2"]) == 2
    assert "--batch goes with --model" in capsys.readouterr().err
    path = make.node_file(tmp_path / "m.onnx", "lstm", static=False, seed=2)
    assert main(["bench", "--model", str(path), "--suite", "quick"]) == 2
    assert "--suite and --model both say what to time" in capsys.readouterr().err
    assert main(["bench", "--model", str(path), "--steps", "0,4"]) == 2
    assert "--steps 0,4: allowed a comma list of integers >= 1" in capsys.readouterr().err
    assert main(["bench", "--model", str(path), "--backends", "numpy,jax"]) == 2
    assert "unknown backend 'jax'" in capsys.readouterr().err
