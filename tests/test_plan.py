"""Rounds planned to fit the budget: by hand against the estimates, then end to end: a run
whose budget is spent gives its cases fewer rounds (never below MIN_ROUNDS), says so, and one
that leaves cases untimed says so in its last line and exits 1 unless --partial-ok."""

from __future__ import annotations

import dataclasses

import pytest

from harness.bench import engine, plan
from harness.bench.case import make_case
from harness.bench.suites import Suite
from harness.cli.main import main
from harness.records import store as results
from harness.records.results import Timing

SETTINGS = Timing(warmup_s=0.05, min_round_s=0.04, rounds=7, pause_s=0.1)
SHAPE = {"cell": "gru", "batch": 1, "steps": 2, "input_size": 3, "hidden": 4}
PAIR = [make_case("numpy", mode, **SHAPE) for mode in ("forward", "gemm")]
# a group of two: fixed 3 + 2 * (0.05 + 2 * 0.04) = 3.26 s, a pass 2 * (0.04 + 0.1) = 0.28 s


def test_the_estimates_by_hand():
    assert plan.fixed_estimate_s(PAIR, SETTINGS) == pytest.approx(3.26)
    assert plan.pass_estimate_s(PAIR, SETTINGS) == pytest.approx(0.28)
    assert plan.estimate_s([PAIR, PAIR], SETTINGS) == pytest.approx(2 * (3.26 + 7 * 0.28))
    assert plan.estimate_s([PAIR], SETTINGS, rounds=3) == pytest.approx(3.26 + 3 * 0.28)


@pytest.mark.parametrize(
    ("budget", "rounds"),
    [
        (None, 7),  # no budget: the suite's rounds
        # 3.54 spent + 6 * 0.28 left of this group + 1.5 * 3.26 (MARGIN) + 7 * 0.28 later
        (12.07 + 1e-9, 7),
        (11.0, 5),  # 7.46 left: (c - 1) * 0.28 + 4.89 + 0.28 c <= 7.46 -> c = 5
        (5.0, 3),  # not even 3 fits: MIN_ROUNDS all the same (the engine drops what is left)
    ],
)
def test_rounds_by_hand(budget, rounds):
    planned = plan.RoundPlan([PAIR, PAIR], SETTINGS, budget)
    assert planned.rounds(0, spent_s=3.54, pass_s=0.28) == rounds


def _record(case, build_s, calibrate_s):
    from harness.bench.group import new_record

    return new_record(case, build_s=build_s, calibrate_s=calibrate_s)


def test_what_the_groups_so_far_took_plans_the_rest():
    """The first group's workers took 10 s to build (not the 3 s allowed before any was seen),
    its cases 0.5 s to calibrate and its pass twice its estimate: the later group (the same
    backend) is expected to take as long."""
    first = [_record(PAIR[0], 10.0, 0.5), _record(PAIR[1], 9.0, 0.5)]
    planned = plan.RoundPlan([PAIR, PAIR], SETTINGS, 20.0)
    planned.learn(first)
    assert planned.fixed_s(PAIR) == pytest.approx(9.5 + 2 * 0.5)  # median build, calibrations
    # 8.92 s left: the later group's 10.5 s of builds and calibrations do not fit
    assert planned.rounds(0, spent_s=11.08, pass_s=0.56) == 3
    assert planned.pass_scale() == pytest.approx(2.0)
    roomy = plan.RoundPlan([PAIR, PAIR], SETTINGS, 33.0)
    roomy.learn(first)
    # 21.92 s left: (c - 1) * 0.56 + 1.5 * 10.5 (MARGIN) + c * 0.56 <= 21.92 -> c = 6
    assert roomy.rounds(0, spent_s=11.08, pass_s=0.56) == 6
    # the last group: nothing after it; 8.92 s left takes all 7 rounds of 0.56 s
    assert roomy.rounds(1, spent_s=24.08, pass_s=0.56) == 7


def test_fewer_rounds_than_the_minimum_are_never_planned_and_never_asked_for_more():
    few = SETTINGS.model_copy(update={"rounds": 2})
    assert plan.RoundPlan([PAIR], few, 0.001).rounds(0, 100.0, 1.0) == 2
    assert plan.least_rounds(SETTINGS) == plan.MIN_ROUNDS == 3


SUITE = """name = "tight"
budget_s = {budget}
[timing]
warmup_s = 0.0
min_round_s = 0.005
rounds = 7
pause_s = 0.05
[[sweep]]
backends = ["numpy"]
modes = ["forward", "gemm"]
cell = ["rnn"]
batch = [1]
steps = {steps}
input = [3]
hidden = [4]
"""


def test_a_spent_budget_gives_fewer_rounds_before_it_drops_a_case(tmp_path, capsys):
    """A budget shorter than one group's start: its cases get 3 rounds, not 7, are all timed,
    and the run says how many rounds they got."""
    suite = tmp_path / "tight.toml"
    suite.write_text(SUITE.format(budget=0.2, steps=[2]))
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 0
    doc = results.load_results(out)
    assert [r.status for r in doc.cases] == ["ok", "ok"]
    assert [len(r.samples_s) for r in doc.cases] == [3, 3]  # the same count: rounds still pair
    text, err = capsys.readouterr()
    assert "exceeds its budget_s of 0.2 s, and 3 s at 3 rounds a case: what the budget" in err
    last = text.strip().splitlines()[-1]
    assert "2 of 2 cases timed" in last and "3 rounds each (the suite asks 7" in last


def test_cases_left_untimed_end_the_output_and_exit_1_unless_partial_ok(tmp_path, capsys):
    suite = tmp_path / "tight.toml"
    suite.write_text(SUITE.format(budget=0.2, steps=[2, 3]))
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("2 of 4 cases NOT timed: the budget was spent")
    args = ["bench", "--suite", str(suite), "--out", str(out), "--overwrite", "--partial-ok"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("--partial-ok: exit 0")
    assert main([*args, "--budget", "60"]) == 0  # --budget replaces the suite's
    doc = results.load_results(out)
    assert [r.status for r in doc.cases] == ["ok"] * 4 and doc.suite.budget_s == 60
    assert {len(r.samples_s) for r in doc.cases} == {7}


def test_the_budget_is_said_up_front_against_the_estimates():
    said: list[str] = []
    suite = Suite("s", "", 4.5, SETTINGS, tuple(PAIR))  # 3.26 + 7 * 0.28 = 5.22; 4.1 at 3
    engine.say_budget(suite, suite.groups(), said.append)
    assert said == [
        "suite 's': an estimated 5 s to measure exceeds its budget_s of 4.5 s: its cases get "
        "fewer than 7 rounds each (down to 3), planned as the run goes"
    ]
    said.clear()
    engine.say_budget(dataclasses.replace(suite, budget_s=6.0), suite.groups(), said.append)
    assert said == []


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_budget_is_one_line(tmp_path, capsys, value):
    assert main(["bench", "--suite", "quick", "--budget", value, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == f"rnnbench: error: --budget {value}: allowed a number of seconds > 0\n"


def test_the_report_says_how_many_rounds_each_case_got_and_how_many_were_retimed():
    from harness.analysis import runs
    from tests.synthetic_results import document, record, spread, views

    shape = {"cell": "lstm", "batch": 1, "input_size": 8, "hidden": 8}
    cases = [make_case("numpy", "forward", steps=T, **shape) for T in (1, 2, 3)]
    records = [record(c, spread(1e-3, n)) for c, n in zip(cases, (3, 3, 7), strict=True)]
    records[0]["retimed"] = 2
    (view,) = views(document(records))  # the quick suite's timing: 7 rounds asked
    assert runs.rounds_got(view) == "3 to 7 of 7: 3 x 2 cases, 7 x 1 cases"
    assert runs.retimed(view) == "2 in 1 cases"
    table = runs.runs_table([view])
    assert "| rounds a case | retimed |" in table and "| 3 to 7 of 7: " in table
    (few,) = views(document(records[:2]))
    (clean,) = views(document(records[1:]))
    assert runs.rounds_got(few) == "3 of 7" and runs.retimed(clean) == "none"


def test_waiting_for_another_benchmark_is_not_counted_against_the_budget(tmp_path, monkeypatch):
    """Another run holds the machine for 4 s from this run's start (its results file
    written); this run's budget of 3 s still times both its groups, and its wall time says it
    waited."""
    import fcntl
    import threading
    import time

    lock, out = tmp_path / "machine.lock", tmp_path / "r.json"
    lock.touch()
    monkeypatch.setenv("RNNBENCH_LOCK", str(lock))
    held = open(lock)  # noqa: SIM115 (closed, so released, by the thread below)
    fcntl.flock(held, fcntl.LOCK_EX)

    def release() -> None:
        while not out.exists():
            time.sleep(0.01)
        time.sleep(4.0)
        held.close()

    threading.Thread(target=release).start()
    shape = {"cell": "rnn", "batch": 1, "input_size": 3, "hidden": 4}
    cases = tuple(make_case("numpy", "gemm", steps=T, **shape) for T in (2, 3))
    timing = {"warmup_s": 0.0, "min_round_s": 0.005, "rounds": 3, "pause_s": 0.0}
    doc = engine.run_suite(Suite("waits", "", 3.0, timing, cases), out)
    assert [r.status for r in doc.cases] == ["ok", "ok"] and doc.wall_s >= 4.0
    # the 4 s start once the thread sees the file (polled every 10 ms), a little before or after
    # this run asks for the lock
    assert 3.9 <= doc.waited_s < doc.wall_s
