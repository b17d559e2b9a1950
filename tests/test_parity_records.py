"""A parity record once written: its JUnit testcases name the model and export files (two models'
files merged in one CI page do not collide; names are unique within a file), and `rnnbench
report` given a record that failed shows it failing with its first failure (a check that failed
before its values were compared writes Infinity, which the report reads), never leaves it out.
Records made by hand here: no framework is needed."""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET

import pytest

from harness.parity.checks import Comparison
from harness.parity.junit import junit_xml
from harness.parity.report import parity_record, write_record
from harness.parity.run import BackendResult

FILE_CASE = ("gru-file-float32", "gru", "float32", 1, 1)
WEIGHTS_FAILURE = "export-file: weights l0.R: at index (0, 9, 0): -0.17 vs reference -0.18"


def _comparison(quantity: str, passed: bool = True, message: str = "", share: float = 0.01):
    return Comparison(quantity, passed, 1e-7, 1e-6, 1e-5, 1e-4, message, share)


def _record(model: str, export: str, failing: bool):
    weights = _comparison("export-file: weights l0.R")
    if failing:  # failed before the values were compared: no figures, an infinite share
        nan = math.nan
        weights = Comparison("export-file: weights l0.R", False, nan, nan, 0.0, 0.0)
        weights = dataclasses.replace(weights, message=WEIGHTS_FAILURE, share_of_tolerance=math.inf)
    results = [
        BackendResult("model-file", *FILE_CASE[:1], "passed", "", [_comparison("(T=7, B=3): y")])
        for _ in range(2)  # two data sets: the same check twice
    ]
    results += [
        BackendResult(
            "export-file",
            FILE_CASE[0],
            "failed" if failing else "passed",
            "",
            [weights, _comparison("export-file (T=7, B=3): y")],
        ),
        BackendResult("numpy", "gru-L1-uni-full-float32", "passed", "", [_comparison("y")]),
        BackendResult("torch-cpu", "gru-L1-uni-full-float32", "skipped", "torch is missing"),
    ]
    for r in results:
        r.cell, r.dtype, r.layers, r.directions = FILE_CASE[1:]
    info = {
        "path": f"models/{model}",
        "kind": "torchscript",
        "direction": "forward",
        "spec": {"cell": "gru"},
        "weights_digest": "0" * 16,
    }
    return parity_record(results, [], {"model": info, "against": f"exports/{export}"}, 1.0)


def _testcases(xml: str) -> list[tuple[str, str]]:
    root = ET.fromstring(xml)
    return [(c.get("classname"), c.get("name")) for suite in root for c in suite]


def test_junit_testcases_name_model_and_export_and_never_collide():
    first = _testcases(junit_xml(_record("a.pt", "a.onnx", failing=True)))
    second = _testcases(junit_xml(_record("b.pt", "b.onnx", failing=False)))
    assert ("rnnbench.parity.a.pt", "a.onnx: file weights (gru float32)") in first
    assert ("rnnbench.parity.a.pt", "a.pt: file outputs (gru float32)") in first
    assert ("rnnbench.parity.a.pt", "a.pt: file outputs (gru float32) #2") in first
    assert ("rnnbench.parity.b.pt", "numpy: y (gru-L1-uni-full-float32)") in second
    for cases in (first, second):
        assert len(cases) == len(set(cases)) == 6, cases
    assert not set(first) & set(second)  # merged in one CI page, each model's checks its own


def test_a_failed_record_is_written_with_infinity_and_its_failure_in_junit(tmp_path):
    record = _record("a.pt", "a.onnx", failing=True)
    assert record.passed is False
    write_record(tmp_path / "r.json", record)
    assert "Infinity" in (tmp_path / "r.json").read_text()  # the summary's worst share
    root = ET.fromstring(junit_xml(record))
    failure = next(c.find("failure") for s in root for c in s if c.find("failure") is not None)
    assert failure.get("message") == WEIGHTS_FAILURE and root.get("failures") == "1"


@pytest.fixture
def bench_file(tmp_path):
    from tests.synthetic_results import example_doc

    path = tmp_path / "bench.json"
    path.write_text(json.dumps(example_doc("cpu-box")))
    return path


def _report(*inputs, out):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the report extra)")
    pytest.importorskip("markdown_it", reason="markdown-it-py is not installed (the report extra)")
    pytest.importorskip("scipy", reason="scipy is not installed (the report extra)")
    from harness.cli.main import main

    return main(["report", *map(str, inputs), "--out", str(out)])


def test_report_shows_a_failed_parity_record_failing_with_its_first_failure(bench_file, tmp_path):
    failed, passed = tmp_path / "failed.json", tmp_path / "passed.json"
    write_record(failed, _record("a.pt", "a.onnx", failing=True))
    write_record(passed, _record("b.pt", "b.onnx", failing=False))
    assert _report(bench_file, failed, passed, out=tmp_path / "o") == 0
    text = (tmp_path / "o" / "report.md").read_text()
    section = text.split("## Parity checks\n")[1].split("\n## ")[0]
    assert "**1 of 2 parity records did not pass.**" in section
    rows = {line.split(" | ")[0][2:]: line for line in section.splitlines() if ".json |" in line}
    assert set(rows) == {str(failed), str(passed)}
    assert (
        "| FAILED | 3 of 4 passed, 1 skipped | 1 | export-file gru-file-float32: "
        in rows[str(failed)]
    )
    assert "weights l0.R: at index (0, 9, 0)" in rows[str(failed)]
    assert "| passed | 4 of 4 passed, 1 skipped | 0 |" in rows[str(passed)]


def test_a_results_file_holding_infinity_is_still_refused(bench_file, tmp_path, capsys):
    bench_file.write_text(
        bench_file.read_text().replace('"samples_s": [', '"samples_s": [Infinity, ', 1)
    )
    assert _report(bench_file, out=tmp_path / "o") == 2
    assert "holds Infinity, which is not a number" in capsys.readouterr().err
