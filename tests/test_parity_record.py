"""A written parity record checked row by row as the pytest matrix checks a run
(tests/parity_rows.py). `tox -e parity` runs `rnnbench parity --report out` and then this module
with --parity-json out/parity.json: CI checks the whole matrix once, through the command users
run, and loses nothing the pytest matrix asserts. Here, a small record made by the command shows
the check passes a good record and names each kind of gap in a broken one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.parity.cases import default_cases
from harness.parity.report import read_parity
from harness.records.parity import ParityRecord
from harness.registry import DEFAULT_PARITY
from tests.parity_rows import record_problems

BACKENDS = ("numpy", "torch-cpu", "ort-direct-cpu")
CASES = default_cases(cells=("lstm",), dtypes=("float32",))


def _read(path: Path) -> ParityRecord:
    return read_parity(path, json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """LSTM in float32 on numpy, torch and ONNX Runtime, with training, as a parity JSON."""
    for package in ("torch", "onnxruntime"):
        pytest.importorskip(package, reason=f"the small record runs a backend of {package}")
    out = tmp_path_factory.mktemp("parity") / "parity.json"
    argv = ["parity", "--cells", "lstm", "--dtype", "float32", "--backends", ",".join(BACKENDS)]
    assert main([*argv, "--json", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _problems(doc: dict) -> list[str]:
    record = ParityRecord.model_validate(doc)
    return record_problems(record, CASES, BACKENDS, [("lstm", "float32")])


def _row(doc: dict, backend: str, case: str) -> dict:
    (row,) = (r for r in doc["results"] if (r["backend"], r["case"]) == (backend, case))
    return row


def test_a_whole_record_passes_the_check(small):
    assert _problems(small) == []
    assert {(r["backend"], r["case"]) for r in small["results"]} == {
        (b, c.id) for b in BACKENDS for c in CASES
    }


def test_each_gap_in_a_record_is_named(small):
    doc = json.loads(json.dumps(small))
    case = "lstm-L2-bi-full-float32"
    torch_row, ort_row = _row(doc, "torch-cpu", case), _row(doc, "ort-direct-cpu", case)
    torch_row["comparisons"] = [
        c for c in torch_row["comparisons"] if c["quantity"] not in ("grad:l0.R", "grad:head.W")
    ]
    torch_row["reason"] = "forward only: no gradients"
    ort_row["audit"]["checker"] = "ValidationError: bad graph"
    ort_row["comparisons"] = [c for c in ort_row["comparisons"] if c["quantity"] != "c_n"]
    doc["results"].remove(_row(doc, "numpy", "lstm-L1-uni-lens-float32"))
    numpy_run = next(t for t in doc["training"] if t["backend"] == "numpy")
    numpy_run["losses"] = numpy_run["losses"][:5]
    torch_run = next(t for t in doc["training"] if t["backend"] == "torch-cpu")
    torch_run["losses"] = torch_run["losses"][::-1]
    unlearned = f"{torch_run['losses'][0]} -> {torch_run['losses'][-1]}"
    assert sorted(_problems(doc)) == sorted(
        [
            "torch-cpu lstm-L2-bi-full-float32: gradients not compared: grad:l0.R "
            "(forward only: no gradients)",
            "torch-cpu lstm-L2-bi-full-float32: grad:head.W missing",
            "ort-direct-cpu lstm-L2-bi-full-float32: c_n not compared",
            "ort-direct-cpu lstm-L2-bi-full-float32: the ONNX checker says "
            "'ValidationError: bad graph' of its export",
            "numpy lstm-L1-uni-lens-float32: not in the record",
            "training lstm float32 numpy: 5 losses, not 20",
            f"training lstm float32 torch-cpu: loss {unlearned}",
        ]
    )
    doc["training"] = [t for t in doc["training"] if t["backend"] != "numpy"]
    assert "training lstm float32: numpy did not run" in _problems(doc)


def test_a_failed_or_unexplained_row_is_named(small):
    doc = json.loads(json.dumps(small))
    row = _row(doc, "torch-cpu", "lstm-L1-uni-full-float32")
    row["status"], row["comparisons"][0]["passed"] = "failed", False
    row["comparisons"][0]["message"] = "y: at index (0, 0, 0): 1 vs reference 2"
    _row(doc, "ort-direct-cpu", "lstm-L1-bi-full-float32").update(status="skipped", reason="")
    doc["passed"] = False
    assert sorted(_problems(doc)) == sorted(
        [
            "the record did not pass",
            "torch-cpu lstm-L1-uni-full-float32: failed: y: at index (0, 0, 0): 1 vs reference 2",
            "ort-direct-cpu lstm-L1-bi-full-float32: skipped without a reason",
        ]
    )


def test_the_record_of_tox_parity_holds_the_whole_matrix(request):
    """Every default case on every default backend, outputs and gradients, and the training
    trajectories of every cell and dtype: what the pytest matrix (test-full) checks."""
    path = request.config.getoption("--parity-json")
    if not path:
        pytest.skip("checks a record of the whole matrix: --parity-json out/parity.json")
    record = _read(Path(path))
    trained = [(cell, dtype) for cell in ("rnn", "lstm", "gru") for dtype in ("float32", "float64")]
    problems = record_problems(record, default_cases(), DEFAULT_PARITY, trained)
    assert not problems, "\n".join(problems)
