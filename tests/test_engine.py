"""The engine end to end on NumPy cases (real worker processes), resume, timeouts, refusals;
and the worker's refusal to time a model that failed parity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import stats
from harness.analysis.rows import paired, rows
from harness.bench import engine, worker
from harness.bench import workload as backends
from harness.bench.case import make_case
from harness.bench.suites import TIMING_DEFAULTS, Suite
from harness.model.flops import case_flops
from harness.parity.checks import compare
from harness.records import store as results

FAST = {
    **TIMING_DEFAULTS,
    "warmup_s": 0.0,
    "min_round_s": 0.002,
    "rounds": 3,
    "pause_s": 0.0,
    "timeout_s": 120,
}


def _suite(timing=FAST, extra=()):
    shape = {"cell": "gru", "batch": 2, "steps": 5, "input_size": 4, "hidden": 8}
    cases = (
        make_case("numpy", "forward", **shape),
        make_case("numpy", "gemm", **shape),
        make_case("numpy", "peak", size=32),
        *extra,
    )
    return Suite("tiny", "", 10, dict(timing), cases)


def test_run_suite_writes_a_valid_results_file(tmp_path):
    seen = []
    out = tmp_path / "r.json"
    doc = engine.run_suite(_suite(), out, progress=lambda r, n, total: seen.append((n, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    reread = results.load_results(out)
    assert reread.cases == doc.cases and reread.finished
    for record in reread.cases:
        assert record.status == "ok", record.reason
        assert len(record.samples_s) == 3 and record.loops >= 1
        assert record.stats.model_dump() == stats.summarize(record.samples_s)
        assert all(c.passed for c in record.parity)
        assert record.threads["requested"] == 1
    forward = reread.cases[0]
    assert forward.flops == case_flops("forward", "gru", 2, 5, 4, 8) == 2 * 5 * 2 * 12 * 24
    assert forward.impl_class.startswith("NumPy step loop")
    ((label, machine),) = reread.machines.items()
    assert {r.machine for r in reread.cases} == {label} == {machine.environment.machine}
    assert {r.worker for r in reread.cases} == {None}  # not a Dask run
    assert machine.environment.cpu["logical_cores"] >= 1 and machine.hosts
    assert 0 < machine.selfcheck["loop_overhead_fraction_of_1ms"] < 0.01
    assert reread.client.scheduler is None and reread.client.machine == label
    assert reread.suite.identity == _suite().identity()
    forward_run, gemm_run, peak_run = (r.group_run for r in reread.cases)
    assert forward_run == gemm_run != peak_run  # one interleaved group, and the probe's own


def test_resume_measures_only_what_is_missing_and_never_overwrites(tmp_path):
    out = tmp_path / "r.json"
    first = engine.run_suite(_suite(), out)
    kept = first.cases[0]
    interrupted = first.model_copy(update={"cases": [kept]})
    results.save_results(out, interrupted)
    seen = []
    doc = engine.run_suite(_suite(), out, resume=True, progress=lambda r, n, t: seen.append(r.id))
    assert seen == [c.id for c in first.cases[1:]]
    assert doc.cases[0] == kept and len(doc.cases) == 3
    forward, gemm = rows(results.machine_views(doc))[:2]  # one group, its cases in two runs
    assert forward.round_group[0] == gemm.round_group[0] and not paired(forward, gemm)
    with pytest.raises(results.ResultsError, match="exists: pass --resume .* or --overwrite"):
        engine.run_suite(_suite(), out)
    other = Suite("other", "", 1, dict(FAST), _suite().cases)
    with pytest.raises(results.ResultsError, match="holds suite 'tiny', not 'other'"):
        engine.run_suite(other, out, resume=True)


def test_a_version_1_file_resumes_into_version_2_on_its_machine(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNBENCH_MACHINE", raising=False)
    out = tmp_path / "r.json"
    first = json.loads(results.dumps(engine.run_suite(_suite(), out, machine="old")))
    keep = ("id", "case", "status", "reason", "samples_s", "stats", "flops", "bytes")
    suite = {k: first["suite"][k] for k in ("name", "path", "budget_s", "timing")}
    version_1 = {
        **{k: first[k] for k in ("kind", "started", "finished", "wall_s")},
        "suite": suite,
        "schema_version": 1,
        "environment": first["machines"]["old"]["environment"],
        "selfcheck": first["machines"]["old"]["selfcheck"],
        "cases": [{k: first["cases"][0][k] for k in keep}],
    }
    out.write_text(json.dumps(version_1))
    with pytest.raises(results.ResultsError, match=r"measured on old, not on '.+': .*--machine"):
        engine.run_suite(_suite(), out, resume=True)  # the hostname is not 'old'
    doc = engine.run_suite(_suite(), out, resume=True, machine="old")
    saved = results.load_results(out)
    assert saved == doc and json.loads(out.read_text())["schema_version"] == results.SCHEMA_VERSION
    assert [r.machine for r in saved.cases] == ["old"] * 3 and list(saved.machines) == ["old"]


def test_a_resume_on_a_label_of_another_environment_is_refused_and_another_label_adds_up(
    tmp_path,
):
    out = tmp_path / "r.json"
    first = engine.run_suite(_suite(), out, machine="here")
    changed = first.model_copy(deep=True)
    changed.machines["here"].environment.cpu["model"] = "Another CPU"
    changed.cases = changed.cases[:1]
    results.save_results(out, changed)
    with pytest.raises(
        results.ResultsError,
        match=r"cannot resume .*: machine label 'here' already names another .*Another CPU",
    ):
        engine.run_suite(_suite(), out, resume=True, machine="here")
    assert results.load_results(out) == changed  # nothing lost
    doc = engine.run_suite(_suite(), out, resume=True, machine="there")
    assert [r.machine for r in doc.cases] == ["here", "there", "there"]
    assert sorted(doc.machines) == ["here", "there"]


def test_a_case_past_its_deadline_is_recorded_and_the_sweep_goes_on(tmp_path):
    # a build (weights, the reference, the parity check) far longer than a millisecond
    slow = make_case("numpy", "forward", "lstm", batch=8, steps=64, input_size=64, hidden=128)
    suite = _suite(timing={**FAST, "timeout_s": 0.001})
    suite = Suite("tiny", "", 10, suite.timing, (slow,))
    doc = engine.run_suite(suite, tmp_path / "r.json")
    (record,) = doc.cases
    assert record.status == "timeout" and "timeout_s" in record.reason


def test_an_absent_backend_is_skipped_with_its_reason(tmp_path):
    pytest.importorskip("torch", reason="torch is not installed")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: torch-cuda would run")
    case = make_case("torch-cuda", "forward", batch=1, steps=2, input_size=3, hidden=4)
    doc = engine.run_suite(Suite("t", "", 1, dict(FAST), (case,)), tmp_path / "r.json")
    assert doc.cases[0].status == "skipped"
    assert "no CUDA device" in doc.cases[0].reason


class FakeConn:
    def __init__(self, requests):
        self.requests, self.sent = list(requests), []

    def send(self, message):
        self.sent.append(message)

    def recv(self):
        return self.requests.pop(0)


def test_the_worker_refuses_to_time_a_model_that_failed_parity(monkeypatch):
    real_build = backends.build

    def wrong_model(case, backend):
        workload = real_build(case, backend)
        workload.checks.append(compare("y", [1.0, 2.0], np.float32([1.0, 2.5]), "float32"))
        workload.run = lambda: pytest.fail("a model that failed parity was timed")
        return workload

    monkeypatch.setattr(backends, "build", wrong_model)
    conn = FakeConn(["calibrate", "round", "stop"])
    case = make_case("numpy", "forward", batch=1, steps=2, input_size=3, hidden=4)
    worker._serve(conn, case.as_dict(), FAST)
    (message,) = conn.sent
    assert message["status"] == "failed" and "y: at index (1,)" in message["reason"]


def test_the_worker_protocol_in_process():
    conn = FakeConn(["calibrate", "round", "round", "stop"])
    case = make_case("numpy", "gemm", batch=1, steps=2, input_size=3, hidden=4)
    worker._serve(conn, case.as_dict(), FAST)
    built, ready, *rounds = conn.sent
    assert built["status"] == "built" and ready["status"] == "ready"
    assert len(rounds) == 2 and all(r["sample_s"] > 0 and r["retimed"] >= 0 for r in rounds)


def test_bench_command_end_to_end(tmp_path, capsys):
    from harness.cli.main import main

    suite = tmp_path / "tiny.toml"
    suite.write_text(
        'name = "tiny"\nbudget_s = 5\n[timing]\nrounds = 2\nmin_round_s = 0.002\n'
        'pause_s = 0.0\nwarmup_s = 0.0\n[[sweep]]\nbackends = ["numpy"]\n'
        'modes = ["forward", "gemm"]\ncell = ["rnn"]\nbatch = [2]\nsteps = [3]\n'
        "input = [4]\nhidden = [5]\n"
    )
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--only", "gemm"]) == 0
    text = capsys.readouterr().out
    assert "numpy/gemm/rnn/float32/B2/T3/I4/H5/L1/th1" in text and "1 of 1 cases timed" in text
    assert [c.case.mode for c in results.load_results(out).cases] == ["gemm"]
    before = out.read_text()
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 2  # exists: refused
    assert out.read_text() == before
    assert main(["bench", "--suite", "nope"]) == 2
    assert main(["bench", "--suite", str(suite), "--only", "lstm"]) == 2
    assert "no case of suite 'tiny' matches --only 'lstm'" in capsys.readouterr().err
