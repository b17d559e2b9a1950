"""The command chains docs/usage.md shows, as written: `parallel-in-time --json out.json` (a
solve, or --predict) then `report out.json`; and findings.md opening with the answer for a
`bench --model` run, never with "No answer:"."""

from __future__ import annotations

import json

import pytest

from harness.bench.case import make_case
from harness.cli.main import main
from tests.synthetic_law import law_file
from tests.synthetic_results import document, record, spread

SMALL = ["--cell", "gru", "--hidden", "8", "--input", "4", "--steps", "64", "--threads", "1"]


@pytest.fixture(scope="module")
def law(tmp_path_factory):
    return str(law_file(tmp_path_factory.mktemp("law")))


def test_a_solve_then_its_report(tmp_path, capsys, law):
    out = tmp_path / "out.json"
    argv = ["parallel-in-time", *SMALL, "--method", "quasi-newton", "--law", law]
    assert main([*argv, "--json", str(out)]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    findings = (tmp_path / "rep" / "findings.md").read_text()
    verdict = json.loads(out.read_text())["versus_step_loop"]["verdict"]
    assert findings.startswith("**The answer for these parallel-in-time solves.**")
    assert f"quasi-newton **{'is too close to call' if 'close' in verdict else verdict}**" in (
        findings
    )
    assert "No answer" not in findings
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Single solves (`rnnbench parallel-in-time --json`)" in report


def test_a_prediction_then_its_report(tmp_path, capsys, law):
    pytest.importorskip("torch", reason="the prediction probes torch's solver and step loop")
    out = tmp_path / "out.json"
    argv = ["parallel-in-time", *SMALL, "--framework", "torch", "--dtype", "float32"]
    assert main([*argv, "--predict", "--law", law, "--json", str(out)]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Predictions alone (`rnnbench parallel-in-time --predict --json`)" in report
    assert report.count("| gru | 8 | 1 |") == 12  # both methods at six T


def test_a_record_that_is_not_one_is_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"command": "parallel-in-time", "steps": 3}))
    assert main(["report", str(bad), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "bad.json is corrupt: model: missing" in err and err.count("\n") == 1


def test_findings_of_a_bench_model_run_open_with_the_answer(tmp_path, capsys):
    shape = {"cell": "gru", "batch": 1, "input_size": 1, "hidden": 16, "threads": 1}
    records = []
    for mode, seconds in (("forward", 10e-3), ("quasi-newton", 5e-3), ("newton", 40e-3)):
        case = make_case(
            "torch-cpu", mode, steps=256, model="membrane.pt", weights_file="membrane.npz", **shape
        )
        made = record(case, spread(seconds))
        if mode != "forward":
            made["parallel_in_time"] = {
                "method": mode,
                "tol": 1e-6,
                "max_iter": 257,
                "lle": -0.3,
                "converged": True,
                "iterations": 12 if mode == "quasi-newton" else 5,
            }
        records.append(made)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(document(records, "model-box")))
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    findings = (tmp_path / "rep" / "findings.md").read_text()
    assert findings.startswith("**The answer for `membrane.pt`.**")
    assert "No answer" not in findings
    assert "fastest **torch-cpu** 10.00 ms" in findings
    assert "by quasi-newton (12 iterations, LLE -0.30) at T=256 it **wins**: 0.50x" in findings
    assert "by newton (5 iterations, LLE -0.30) at T=256 it **loses**: 4.00x" in findings
