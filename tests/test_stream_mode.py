"""The stream and load modes end to end: a stream case beside its forward in one interleaved
group (real worker processes), every call kept and the figures derived from them; a load case's
load test recorded; the report's sections, answer and curve from both; `rnnbench load`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import registry
from harness.bench import engine, group, workload
from harness.bench.case import make_case
from harness.bench.load_mode import default_policy
from harness.bench.suites import TIMING_DEFAULTS, Suite
from harness.model.flops import case_flops
from harness.records import store as results
from harness.records.results import CaseRecord
from harness.tail import MIN_CALLS

FAST = {**TIMING_DEFAULTS, "warmup_s": 0.0, "min_round_s": 0.002, "rounds": 3, "pause_s": 0.0}
SHAPE = {"cell": "lstm", "steps": 8, "input_size": 4, "hidden": 8}
SMALL_LOAD = {"rate_hz": 200.0, "trial_s": 0.05, "max_trial_s": 0.1, "min_requests": 64}


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """A stream case and its forward, timed together; and a load case's record, its load test
    run in this process with a small policy (a suite's takes a minute)."""
    out = tmp_path_factory.mktemp("stream") / "r.json"
    cases = (make_case("numpy", "stream", **SHAPE), make_case("numpy", "forward", **SHAPE))
    doc = engine.run_suite(Suite("tiny-stream", "", None, dict(FAST), cases), out)
    load_case = make_case("numpy", "load", batch=4, **SHAPE)
    backend, _ = workload.open_backend(load_case)
    policy = default_policy(4, (50e-3,), **SMALL_LOAD)
    job = workload.build(load_case, backend, policy=policy)
    record = group.new_record(load_case, **job.finish())
    record = record.model_copy(
        update={"status": "ok", "samples_s": [1e-4], "machine": doc.cases[0].machine}
    )
    return out, doc, CaseRecord.model_validate(record.model_dump())


def test_every_call_of_a_stream_case_is_kept(streamed):
    out, doc, _ = streamed
    stream, forward = results.load_results(out).cases
    assert stream.status == forward.status == "ok", (stream.reason, forward.reason)
    assert stream.group_run == forward.group_run  # timed in turn, round by round
    timing = stream.stream
    assert all(c.passed for c in stream.parity) and timing.steps_checked == 8
    assert {c.quantity for c in stream.parity} == {"y", "h_n", "c_n"}
    latencies = np.array(timing.latencies_ns) * 1e-9
    assert len(latencies) >= MIN_CALLS and len(latencies) == 3 * timing.calls_per_round
    assert stream.loops == timing.calls_per_round
    assert stream.samples_s == pytest.approx(
        [latencies[k : k + stream.loops].mean() for k in range(0, len(latencies), stream.loops)]
    )
    kept = timing.percentiles
    assert [kept.p50, kept.p90, kept.p99, kept.p99_9] == pytest.approx(
        np.percentile(latencies, [50, 90, 99, 99.9]), rel=1e-12
    )
    assert len(timing.noop_ns) == 3 * 200 and timing.noop_class.startswith("NumPy")
    assert stream.flops == case_flops("forward", "lstm", 1, 1, 4, 8)  # one call, one step
    assert stream.impl_class.startswith("NumPy: per layer")


def test_the_report_reads_the_streams_against_their_floor(streamed, tmp_path):
    from harness.analysis import streaming, streaming_views
    from harness.analysis.report import write_report

    out, doc, load_record = streamed
    views = results.machine_views(results.load_results(out))
    (row,) = streaming.analyse(views).streams
    stream, forward = doc.cases
    median = np.median(forward.samples_s)
    assert row.floor[0] == pytest.approx(median / 8) and row.floor_backend == "numpy"
    assert row.overhead[0] == pytest.approx(row.tail["p50"][0] / row.floor[0])
    assert row.tail["p99"][1] <= row.tail["p99"][0] <= row.tail["p99"][2]
    both = doc.model_copy(update={"cases": [*doc.cases, load_record]})
    path = tmp_path / "both.json"
    results.save_results(path, both)
    write_report([str(path)], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"## {streaming_views.STREAM_TITLE}" in text
    assert f"## {streaming_views.LOAD_TITLE}" in text
    assert "**numpy** is fastest" in text and "Streams this machine serves" in text
    assert (tmp_path / "report" / "img" / f"{streaming_views.CURVE}.png").exists()


def test_a_load_case_records_its_trials_and_what_they_settle(streamed):
    _, _, record = streamed
    test = record.load
    assert test.policy.max_batch == 4 and test.policy.targets_s == [50e-3]
    (found,) = test.capacity
    assert found.streams >= 1 and test.trials[found.trial].passes(50e-3)
    for trial in test.trials:
        assert abs(trial.offered_hz / trial.requested_hz - 1) <= 0.05


def test_rnnbench_load(tmp_path, capsys):
    from harness.cli.main import main

    out = tmp_path / "load.json"
    argv = ["load", "--backend", "numpy", "--cell", "gru", "--hidden", "8", "--input-size", "4"]
    argv += ["--target-ms", "5", "--rate-hz", "1000", "--max-batch", "8", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "numpy/load/gru/float32/B8/T16/I4/H8/L1/th1" in printed and "p99 under 5.00 ms" in printed
    )
    written = json.loads(out.read_text())
    from harness.records.streaming import LoadTest

    test = LoadTest.model_validate(written["load"])
    assert test.policy.rate_hz == 1000.0 and test.policy.targets_s == [5e-3]
    assert all(c["passed"] for c in written["parity"])


def test_rnnbench_load_refuses_what_it_cannot_run(capsys):
    from harness.cli.main import main

    assert main(["load", "--backend", "ort-torchscript-cpu"]) == 2
    assert "has no load mode: allowed numpy" in capsys.readouterr().err
    assert main(["load", "--target-ms", "ten"]) == 2
    assert "--target-ms ten: allowed a comma list" in capsys.readouterr().err
    assert main(["load", "--max-batch", "0"]) == 2
    assert "max_batch" in capsys.readouterr().err
    assert "load" in registry.modes_of("numpy")
