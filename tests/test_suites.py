"""Suites as data: every committed suite loads; bad suite files give one clear line."""

from __future__ import annotations

import pytest

from harness.bench.case import BenchCase, make_case
from harness.bench.suites import Suite, SuiteError, load_suite, oversubscribed, suite_names
from harness.cli import bench as bench_cli
from harness.cli.main import main


def test_committed_suites_load():
    assert {"quick", "full", "deepbench", "gpu"} <= set(suite_names())
    for name in suite_names():
        suite = load_suite(name)
        assert suite.cases and suite.budget_s > 0
        assert len({c.id for c in suite.cases}) == len(suite.cases)
        assert suite.info().identity.sha256 == load_suite(name).identity().sha256


def test_quick_suite_covers_what_the_report_needs():
    cases = load_suite("quick").cases
    modes = {c.mode for c in cases}
    assert {"forward", "train", "gemm", "peak", "bandwidth", "sequential"} <= modes
    steps = {c.steps for c in cases if c.sweep == "steps"}
    assert len(steps) >= 3  # a latency = a + b*T fit needs several T
    assert {c.cell for c in cases} >= {"lstm", "gru", "mingru"}


def test_deepbench_sizes():
    cases = load_suite("deepbench").cases
    lstm_h = {c.hidden for c in cases if c.cell == "lstm"}
    assert min(lstm_h) == 256 and max(lstm_h) == 1536
    assert max(c.steps for c in cases if c.cell == "gru") == 1500


def test_groups_interleave_backends_and_modes_of_one_shape():
    suite = load_suite("quick")
    for group in suite.groups():
        assert len({c.group for c in group}) == 1
    standard = next(g for g in suite.groups() if g[0].sweep == "standard")
    assert {(c.backend, c.mode) for c in standard} >= {("numpy", "forward"), ("torch-cpu", "gemm")}


def _write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return str(path)


GOOD = 'name = "t"\nbudget_s = 1\n[[sweep]]\nbackends = ["numpy"]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "cell = ['lstmm']\n", r"sweep\[0\]: a case's cell = 'lstmm' is invalid"),
        (GOOD + "batch = [0]\n", r"sweep\[0\]\.batch\[0\] = 0: allowed a number >= 1"),
        (GOOD + "colour = [1]\n", r"sweep\[0\]\.colour: not a field this file may hold"),
        (GOOD + "steps = 5\n", r"sweep\[0\]\.steps = 5: allowed a list"),
        (GOOD + "steps = []\n", r"sweep\[0\]\.steps = \[\]: list should have at least 1 item"),
        (GOOD + "batch = [2.5]\n", r"sweep\[0\]\.batch\[0\] = 2.5: allowed an integer"),
        (GOOD + "bidirectional = [1]\n", r"bidirectional\[0\] = 1: allowed true or false"),
        (GOOD + "modes = 'forward'\n", r"sweep\[0\]\.modes = 'forward': allowed a list"),
        (GOOD + "size = ['big']\n", r"sweep\[0\]\.size\[0\] = 'big': allowed an integer"),
        (GOOD.replace("budget_s = 1", 'budget_s = "abc"'), r"budget_s = 'abc': allowed a number"),
        (GOOD.replace("budget_s = 1", "budget_s = -5"), r"budget_s = -5: allowed a number > 0"),
        (GOOD.replace("budget_s = 1", "budget_s = 0"), r"budget_s = 0: allowed a number > 0"),
        (GOOD + "[timing]\nrounds = 9223372036854775807\n", r"timing\.rounds = .*<= 1000"),
        ('sweep = "abc"\n', r"sweep = 'abc': allowed a list"),
        ("timing = 5\n" + GOOD.split("\n", 1)[1], r"timing = 5: allowed a table of fields"),
        ('name = "/../../../tmp/x/evil"\n' + GOOD.split("\n", 1)[1], r"name = '/../../../tmp"),
        (
            GOOD + "modes = ['train']\ncell = ['mingru']\n",
            r"for numpy and minGRU: forward, sequential, gemm",
        ),
        (GOOD.replace("numpy", "jax"), r"sweep\[0\]: a case's backend = 'jax' is invalid: allowed"),
        (
            'name = "t"\n[[sweep]]\nbackends = ["ort-direct-cpu"]\nmodes = ["train"]\n',
            r"mode = 'train' is invalid: allowed for ort-direct-cpu and lstm: forward",
        ),
        ('name = "t"\n', r"sweep: missing"),
        (GOOD + "[timing]\nrounds = 0\n", r"timing.rounds = 0: allowed a number >= 1"),
        (GOOD + "[timing]\nrounds = 2.5\n", r"timing.rounds = 2.5: allowed an integer"),
        (GOOD + "[timing]\ntimeout_s = 0\n", r"timing.timeout_s = 0: allowed a number > 0"),
        (GOOD + "[timing]\nspeed = 1\n", r"timing.speed: not a field this file may hold"),
        ("name = [", r"is not valid TOML"),
        (GOOD + "modes = ['peak']\n", r"size = 0 is invalid: allowed an integer >= 1"),
    ],
)
def test_bad_suites_are_named(tmp_path, text, message):
    with pytest.raises(SuiteError, match=message) as info:
        load_suite(_write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_unknown_suite_name_lists_the_allowed():
    with pytest.raises(SuiteError, match="unknown suite 'quik': allowed .*quick"):
        load_suite("quik")


def test_a_case_in_two_sweeps_is_timed_once(tmp_path):
    suite = load_suite(_write(tmp_path, GOOD + "[[sweep]]\nbackends = ['numpy']\n"))
    assert len(suite.cases) == 1


def test_case_round_trips_through_its_dict():
    case = make_case("torch-cpu", "train", "gru", batch=4, steps=9, threads=2, sweep="x")
    assert BenchCase.from_dict(case.as_dict()) == case
    assert case.id == "torch-cpu/train/gru/float32/B4/T9/I128/H256/L1/th2"


def test_a_suite_keeps_the_cases_of_one_device():
    from harness.bench.suites import SuiteError, load_suite

    deep = load_suite("deepbench")
    cpu, gpu = deep.on_device("cpu"), deep.on_device("gpu")
    assert {c.device for c in cpu.cases} == {"cpu"} and {c.device for c in gpu.cases} == {"gpu"}
    assert len(cpu.cases) + len(gpu.cases) == len(deep.cases)
    with pytest.raises(SuiteError, match="no case of suite 'quick' runs on 'gpu'"):
        load_suite("quick").on_device("gpu")


def test_only_selects_by_fields_not_by_substrings_of_ids():
    suite = load_suite("full")
    by_text = suite.filtered("gru")  # a substring of ids: minGRU's cases too
    assert {c.cell for c in by_text.cases} == {"gru", "mingru"}
    by_field = suite.filtered("cell=gru,batch=1")
    assert by_field.cases and {(c.cell, c.batch) for c in by_field.cases} == {("gru", 1)}
    assert len(by_field.cases) < len(by_text.cases)
    with pytest.raises(SuiteError, match="not FIELD=VALUE with a case field"):
        suite.filtered("cel=gru")
    with pytest.raises(SuiteError, match="matches --only"):
        suite.filtered("cell=conv")


def test_more_threads_than_cores_is_warned_with_the_reason(tmp_path, capsys, monkeypatch):
    shape = {"cell": "rnn", "batch": 1, "steps": 2, "input_size": 3, "hidden": 4}
    cases = (
        make_case("numpy", "forward", threads=64, **shape),
        make_case("numpy", "gemm", threads=2, **shape),
        make_case("torch-cuda", "forward", threads=64, **shape),  # a GPU case: not counted
    )
    suite = Suite("wide", "", None, {}, cases)
    warning = oversubscribed(suite, 2)
    assert warning.startswith("suite 'wide': 1 of its 3 cases ask for up to 64 threads, and ")
    assert "this machine has 2 usable cores" in warning and "contention" in warning
    assert oversubscribed(suite, 64) is None and oversubscribed(suite, None) is None
    # at load, before anything is timed; the run goes on (a suite may be meant for a larger one)
    monkeypatch.setattr(bench_cli, "usable_cores", lambda: 1)
    path = tmp_path / "two.toml"
    path.write_text(
        'name = "two"\n[timing]\nrounds = 1\nmin_round_s = 0.002\nwarmup_s = 0.0\n'
        'pause_s = 0.0\n[[sweep]]\nbackends = ["numpy"]\nmodes = ["gemm"]\ncell = ["rnn"]\n'
        "batch = [1]\nsteps = [2]\ninput = [3]\nhidden = [4]\nthreads = [2]\n"
    )
    assert main(["bench", "--suite", str(path), "--out", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    assert "rnnbench: warning: suite 'two': 1 of its 1 cases ask for up to 2 threads" in err
