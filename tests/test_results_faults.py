"""Results you can trust under faults, with real processes, signals and file-size limits: one
writer per results file, a resume that checks what it resumes, a budget that is enforced, a
case that cannot fit refused before it allocates, a failed write that loses nothing measured,
SIGTERM handled as Ctrl-C is, and a default output path that stays under out/."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.bench import engine, group, plan, recorder
from harness.bench.case import make_case
from harness.bench.suites import Suite, load_suite
from harness.cli.main import main
from harness.records import store as results

ROOT = Path(__file__).resolve().parents[1]
TIMING = "[timing]\nwarmup_s = 0.0\nmin_round_s = 0.005\nrounds = 3\npause_s = 0.0\n"
SWEEP = '[[sweep]]\nbackends = ["numpy"]\ncell = ["gru"]\nbatch = [1]\ninput = [3]\nhidden = [4]\n'


def _suite_file(tmp_path, name="t", steps=(2, 3), timing=TIMING, budget=""):
    path = tmp_path / f"{name}.toml"
    steps_line = f"steps = {list(steps)}\n"
    path.write_text(f'name = "{name}"\n{budget}{timing}{SWEEP}{steps_line}')
    return path


def _rnnbench(*args, cwd=None, env=None, **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    command = [sys.executable, "-m", "harness", *map(str, args)]
    return subprocess.Popen(command, cwd=cwd, env=env, text=True, **popen)


def test_two_runs_with_one_out_never_lose_a_run(tmp_path):
    """The second run is refused at its start while the first writes; the first's file holds
    every case it timed."""
    slow = TIMING.replace("rounds = 3", "rounds = 8").replace("pause_s = 0.0", "pause_s = 0.1")
    suite = _suite_file(tmp_path, steps=(2, 3, 4, 5), timing=slow)
    out = tmp_path / "r.json"
    first = _rnnbench(
        "bench", "--suite", suite, "--out", out, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / ".r.json.lock").exists() or not out.exists():
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    second = _rnnbench(
        "bench",
        "--suite",
        suite,
        "--out",
        out,
        "--overwrite",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    assert "is being written by another rnnbench run (pid" in err and err.count("\n") == 1, err
    text, err = first.communicate(timeout=120)
    assert first.returncode == 0, (text, err)
    doc = results.load_results(out)
    assert [r.status for r in doc.cases] == ["ok"] * 4


def test_a_finished_file_is_never_replaced_without_overwrite(tmp_path, capsys):
    suite = _suite_file(tmp_path)
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 0
    before = out.read_text()
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 2
    assert "exists: pass --resume" in capsys.readouterr().err and out.read_text() == before


def test_a_changed_suite_cannot_be_resumed_into_an_old_file(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(_suite_file(tmp_path)), "--out", str(out)]) == 0
    before = out.read_text()
    more = _suite_file(tmp_path, steps=(2, 3, 4))
    assert main(["bench", "--suite", str(more), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "not the one it was started with: 1 case(s) added (numpy/forward/gru" in err, err
    fewer = _suite_file(tmp_path, steps=(2,))
    assert main(["bench", "--suite", str(fewer), "--out", str(out), "--resume"]) == 2
    assert "1 case(s) removed" in capsys.readouterr().err
    retimed = _suite_file(tmp_path, timing=TIMING.replace("rounds = 3", "rounds = 4"))
    assert main(["bench", "--suite", str(retimed), "--out", str(out), "--resume"]) == 2
    assert "timing changed (rounds 3 -> 4)" in capsys.readouterr().err
    assert out.read_text() == before


def test_resume_by_the_file_alone_finishes_the_recorded_suite(tmp_path):
    suite = _suite_file(tmp_path, steps=(2, 3, 4))
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 0
    doc = results.load_results(out)
    doc.cases = doc.cases[:1]
    results.save_results(out, doc)
    suite.unlink()  # the suite file is gone: the results file says what it was
    assert main(["bench", "--out", str(out), "--resume"]) == 0
    assert [r.status for r in results.load_results(out).cases] == ["ok"] * 3


def test_a_resume_checks_every_record_it_keeps(tmp_path, capsys):
    """--resume of a file that is not there starts nothing; a record of a case the suite does
    not have, or whose fields are another case's, is refused (it would count as done); a
    recovery file of another results file is not merged."""
    suite = _suite_file(tmp_path, steps=(2, 3))
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--resume"]) == 2
    assert "no such file, so nothing to resume" in capsys.readouterr().err
    assert not out.exists()
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 0
    capsys.readouterr()
    good = out.read_text()
    for change, words in (
        (lambda r: r["case"].update(hidden=9), "holds the fields of"),
        (
            lambda r: (r["case"].update(steps=7), r.update(id=r["id"].replace("T2", "T7"))),
            "which suite 't' does not have",
        ),
    ):
        data = json.loads(good)
        change(data["cases"][0])
        data["cases"][0]["status"] = "not_timed"  # left to be resumed
        data["cases"][0].pop("stats", None)
        data["cases"][0]["samples_s"] = []
        out.write_text(json.dumps(data))
        assert main(["bench", "--suite", str(suite), "--out", str(out), "--resume"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    out.write_text(good)
    recovery = recorder.recovery_file(out)
    recovery.write_text(
        json.dumps(
            {
                "kind": "rnnbench-recovery",
                "results": "/elsewhere/other.json",
                "machines": {},
                "cases": [],
            }
        )
    )
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--resume"]) == 2
    assert "belongs to /elsewhere/other.json" in capsys.readouterr().err
    assert out.read_text() == good


def test_the_budget_is_said_up_front_and_enforced(tmp_path, capsys):
    slow = TIMING.replace("pause_s = 0.0", "pause_s = 0.2")
    suite = _suite_file(tmp_path, steps=(2, 3, 4, 5), timing=slow, budget="budget_s = 1\n")
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 1  # cases left untimed
    out_text, err = capsys.readouterr()
    assert "exceeds its budget_s of 1 s" in err
    doc = results.load_results(out)
    statuses = [r.status for r in doc.cases]
    assert statuses[0] == "ok" and statuses[-1] == "not_timed", statuses
    assert "budget_s 1 s spent" in doc.cases[-1].reason
    last = out_text.strip().splitlines()[-1]
    assert re.match(r"\d+ of 4 cases NOT timed: the budget was spent; --resume times them", last)
    assert last.endswith("exit 1 (--partial-ok allows it)")
    ok = statuses.count("ok")
    resumed = ["bench", "--out", str(out), "--resume", "--partial-ok"]
    assert main(resumed) == 0  # with a budget of its own, which may leave cases again
    assert [r.status for r in results.load_results(out).cases].count("ok") > ok


def test_a_case_that_cannot_fit_is_refused_before_allocating(tmp_path, monkeypatch):
    started = []
    real = group.serve
    monkeypatch.setattr(group, "serve", lambda *a: started.append(a) or real(*a))
    huge = make_case("numpy", "forward", "lstm", batch=1, steps=4, input_size=3, hidden=200000)
    suite = Suite("t", "", None, {"rounds": 2, "min_round_s": 0.005}, (huge,))
    doc = engine.run_suite(suite, tmp_path / "r.json")
    (record,) = doc.cases
    assert record.status == "skipped" and record.reason.startswith("refused before allocating")
    assert "GiB (weights" in record.reason and "available" in record.reason
    assert started == []


def test_a_failed_write_keeps_the_old_file_and_the_measured_groups(tmp_path):
    """Under a file-size limit the third write fails: exit 1 and one line, the file holds its
    last good write, the records measured since are in a recovery file that --resume adds."""
    suite = _suite_file(tmp_path, steps=(2, 3, 4, 5, 6, 7))
    out = tmp_path / "r.json"
    probe = tmp_path / "probe.json"
    assert main(["bench", "--suite", str(suite), "--out", str(probe), "--only", "T2/"]) == 0
    limit = probe.stat().st_size + 3000  # room for the first record, not for all six
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from harness.cli.main import main\n"
        f"sys.exit(main(['bench', '--suite', {str(suite)!r}, '--out', {str(out)!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rnnbench: error: cannot write") and "File too large" in last, last
    assert "--resume adds them" in last
    kept = results.load_results(out)  # whole
    recovery = out.with_name("r.json.recovery")
    saved = json.loads(recovery.read_text())
    assert saved["cases"] and not {r["id"] for r in saved["cases"]} & {r.id for r in kept.cases}
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--resume"]) == 0
    final = results.load_results(out)
    assert [r.status for r in final.cases] == ["ok"] * 6 and not recovery.exists()
    for record in saved["cases"]:  # measured once, kept: not timed again
        assert next(r for r in final.cases if r.id == record["id"]).samples_s == record["samples_s"]


def test_sigterm_is_handled_as_ctrl_c(tmp_path):
    slow = TIMING.replace("rounds = 3", "rounds = 40").replace("pause_s = 0.0", "pause_s = 0.1")
    suite = _suite_file(tmp_path, steps=(2, 3, 4), timing=slow)
    out = tmp_path / "r.json"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = _rnnbench(
        "bench",
        "--suite",
        suite,
        "--out",
        out,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"TMPDIR": str(scratch)},
    )
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("rnnbench-workers-") for p in scratch.iterdir()):
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.05)
    time.sleep(1.0)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143
    assert "terminated: the groups measured so far are in" in err and "--resume" in err
    assert not any(p.name.startswith("rnnbench-workers-") for p in scratch.iterdir())
    results.load_results(out)  # whole


def test_the_default_output_path_stays_under_out(tmp_path):
    suite = load_suite("quick")
    assert all(c.isalnum() or c in "._-" for c in suite.name)
    bad = _suite_file(tmp_path, name="x")
    bad.write_text(bad.read_text().replace('name = "x"', 'name = "/../../../tmp/x/evil"'))
    run = _rnnbench(
        "bench", "--suite", bad, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err = run.communicate(timeout=60)
    assert run.returncode == 2 and "name = '/../../../tmp/x/evil'" in err
    assert not Path("/tmp/x/evil").exists()
    run = _rnnbench(
        "bench",
        "--suite",
        _suite_file(tmp_path, name="ok.name"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run.communicate(timeout=120)
    assert run.returncode == 0
    (written,) = (tmp_path / "out").glob("bench-ok.name-*.json")
    assert written.parent == tmp_path / "out"


@pytest.mark.parametrize("name", ["quick", "full", "deepbench", "gpu"])
def test_every_committed_suite_fits_its_budget_estimate_or_says_so(name):
    """The estimate is what the up-front warning quotes: it must exist and be positive."""
    suite = load_suite(name)
    assert plan.estimate_s(suite.groups(), suite.timing) > 0


def test_a_killed_runs_scratch_folder_is_removed_by_the_next(tmp_path):
    """kill -9 leaves a run's worker folder behind; the next run removes it once its process
    is gone, and leaves a live run's alone."""
    from harness.bench import scratch

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"{scratch.PREFIX}{gone.pid}-abc"
    live = tmp_path / f"{scratch.PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{scratch.PREFIX}oldstyle"
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "1-numpy.log").write_text("log")
    assert scratch.remove_stale(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and other.exists()


# pauses that keep the run measuring for about 4 s past its imports: every delay lands in it
SLOW_TIMING = TIMING.replace("pause_s = 0.0", "pause_s = 0.4").replace("rounds = 3", "rounds = 5")


@pytest.mark.parametrize("delay", [0.05, 0.5, 1.0, 1.5, 2.5])
def test_sigterm_at_any_moment_is_a_message_and_143(tmp_path, delay):
    """Early (while the command imports), while it imports torch and onnxruntime (a C++
    extension, where an exception raised by the handler would end in std::terminate) or late
    (while it measures): never a silent death, an abort or a traceback; what is written is
    whole and the workers' folder is gone."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "r.json"
    run = _rnnbench(
        "bench",
        "--suite",
        _suite_file(tmp_path, timing=SLOW_TIMING),
        "--out",
        out,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={"TMPDIR": str(scratch)},
    )
    time.sleep(delay)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert "Traceback" not in err and "terminate called" not in err, err
    assert not any(p.name.startswith("rnnbench-workers-") for p in scratch.iterdir())
    doc = results.load_results(out) if out.exists() else None  # whole, if written
    if run.returncode == -signal.SIGTERM:  # before the interpreter ran a line, or at its exit
        assert doc is None or doc.finished, err
        return
    assert run.returncode == 143 and "rnnbench: terminated" in err, (run.returncode, err)
    if doc is not None and not doc.finished:  # a run under way: where it is, how to finish it
        assert f"the groups measured so far are in {out}; --resume" in err, err
