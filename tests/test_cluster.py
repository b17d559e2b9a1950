"""`rnnbench bench --scheduler`: a real Dask scheduler and two `dask worker` processes on
loopback addresses (RNNBENCH_MACHINE names them alpha and beta), timing NumPy groups. Every
case is timed once and names its worker's machine; a worker killed with -9 mid-group costs
no case. Both workers share this host, so the machine lock makes them take turns: the test
proves the dispatch, not a speed-up."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.bench.case import make_case
from harness.bench.suites import TIMING_DEFAULTS, Suite
from harness.cli.main import main
from harness.cluster import runner as cluster
from harness.machine.environment import NO_GPU_PROBE, NOT_PROBED
from harness.records import store as results
from harness.records.results import Machine

distributed = pytest.importorskip(
    "distributed", reason="dask[distributed] is not installed (pip install 'rnnbench[cluster]')"
)
psutil = pytest.importorskip("psutil", reason="psutil (a dependency of distributed) is missing")

ROOT = Path(__file__).resolve().parents[1]
FAST = {**TIMING_DEFAULTS, "warmup_s": 0.0, "min_round_s": 0.002, "rounds": 3, "pause_s": 0.0}
SLOW = {**FAST, "min_round_s": 0.05, "rounds": 12}  # a group takes a few seconds
LONG = {**FAST, "min_round_s": 0.05, "rounds": 1000}  # a group takes over a minute


def _suite(timing, hiddens=(4, 8, 12, 16)) -> Suite:
    """One interleaved group per hidden size: the forward pass and its product."""
    cases = []
    for hidden in hiddens:
        shape = {"cell": "gru", "batch": 2, "steps": 5, "input_size": 4, "hidden": hidden}
        cases += [make_case("numpy", "forward", **shape), make_case("numpy", "gemm", **shape)]
    return Suite("tiny", "", 60, dict(timing, timeout_s=120), tuple(cases))


class Cluster:
    """`dask scheduler` and `dask worker --nthreads 1` subprocesses on 127.0.0.1."""

    def __init__(self, folder: Path):
        self.folder, self.workers = folder, {}
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "RNNBENCH_LOCK": str(folder / "machine.lock"),
            # one task a worker, the rest queued at the scheduler for whoever is free
            "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
        }
        self.file = folder / "scheduler.json"
        self.scheduler = self._start(
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(self.file), log="scheduler",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.file.exists():
            assert time.monotonic() < deadline, self.log("scheduler")
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]

    def _start(self, *args: str, log: str, env=None) -> subprocess.Popen:
        with open(self.folder / f"{log}.log", "wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env or self.env,
                cwd=self.folder,
            )

    def add_worker(self, machine: str, *extra: str) -> None:
        self.workers[machine] = self._start(
            "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1",
            "--no-dashboard", *extra, log=machine, env={**self.env, "RNNBENCH_MACHINE": machine},
        )  # fmt: skip

    def wait_for(self, count: int) -> None:
        with distributed.Client(self.address, timeout="30s") as client:
            client.wait_for_workers(count, timeout=90)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            proc.terminate()
        for proc in [*self.workers.values(), self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    running = Cluster(folder)
    try:
        running.add_worker("alpha")
        running.add_worker("beta")
        running.wait_for(2)
        yield running
    finally:
        running.close()


def _loaded(out: Path) -> dict:
    """The results file, checked, as its JSON (version 4)."""
    return json.loads(results.dumps(results.load_results(out)))


def _check_every_case_once(doc, suite: Suite) -> list[dict]:
    if not isinstance(doc, dict):
        doc = json.loads(results.dumps(doc))
    ids = [r["id"] for r in doc["cases"]]
    assert Counter(ids) == Counter(c.id for c in suite.cases), "each case exactly once"
    assert ids == [c.id for c in suite.cases]  # in the suite's order, whatever the finish order
    for record in doc["cases"]:
        assert record["status"] == "ok", (record["id"], record["reason"])
        assert record["machine"] in doc["machines"]
        assert record["worker"] in doc["machines"][record["machine"]]["workers"]
        assert record["host"] == platform.node()
    return doc["cases"]


def test_every_case_is_timed_once_by_a_worker_that_names_its_machine(two_workers, tmp_path):
    suite_file = _write_suite(tmp_path, min_round_s=0.002, rounds=3)
    out = tmp_path / "r.json"
    code = main(
        ["bench", "--suite", str(suite_file), "--out", str(out), "--scheduler", two_workers.address]
    )
    assert code == 0
    doc = _loaded(out)
    suite = _suite_from(suite_file)
    records = _check_every_case_once(doc, suite)
    assert set(doc["machines"]) == {"alpha", "beta"}, "both workers took groups"
    for label, machine in doc["machines"].items():
        assert machine["environment"]["machine"] == label
        assert machine["environment"]["cpu"]["logical_cores"] >= 1
        assert machine["selfcheck"]["timer_resolution_s"] > 0
    groups = {}
    for record in records:  # a group is one task: all its cases on one machine
        shape = tuple(sorted((k, str(v)) for k, v in record["case"].items() if k != "mode"))
        groups.setdefault(shape, set()).add(record["worker"])
    assert all(len(workers) == 1 for workers in groups.values())
    assert doc["client"]["scheduler"] == two_workers.address
    _report_names_each_machine(out, tmp_path / "report", records)
    again = cluster.run_suite_on_dask(
        _suite(FAST, hiddens=(4,)), tmp_path / "again.json", scheduler=two_workers.address
    )
    (label,) = again.machines  # its worker's selfcheck, measured by that worker's first group
    assert again.machines[label].selfcheck == doc["machines"][label]["selfcheck"]


def _report_names_each_machine(out: Path, folder: Path, records: list[dict]) -> None:
    from harness.analysis.machine_sections import environment
    from harness.analysis.report import write_report

    written = write_report([str(out)], folder)
    text = written["markdown"].read_text()
    table = environment(_views(out))
    machines, runs = table.split("Runs:")
    assert machines.count("| alpha") == 1 and machines.count("| beta") == 1 and table in text
    assert runs.count("| alpha") == 1 and runs.count("| beta") == 1
    busy = [float(b) for b in re.findall(r"\| (\d+) s busy of \d+ s \|", runs)]
    wall = _loaded(out)["wall_s"]
    assert len(busy) == 2 and all(0 <= b <= wall + 1 for b in busy)  # shown in whole seconds
    assert sum(r["group_s"] for r in records if r.get("group_s")) > 0
    for record in records:  # each case's row in the machine that timed it
        assert f"@{record['machine']}" in _speed_rows(out, record["id"])


def _views(out: Path) -> list:
    return results.machine_views(results.load_results(out))


def _speed_rows(out: Path, case_id: str) -> str:
    from harness.analysis import rows as table

    rows = [r for r in table.rows(_views(out)) if r.id == case_id]
    assert len(rows) == 1, "one row per case, under the machine that timed it"
    return f"{rows[0].id} @{rows[0].machine}"


def _write_suite(folder: Path, min_round_s: float, rounds: int) -> Path:
    """The suite of _suite as a file, for the command line."""
    path = folder / "tiny.toml"
    path.write_text(
        'name = "tiny"\nbudget_s = 60\n'
        f"[timing]\nwarmup_s = 0.0\nmin_round_s = {min_round_s}\nrounds = {rounds}\n"
        "pause_s = 0.0\n"
        '[[sweep]]\nname = "h"\nbackends = ["numpy"]\nmodes = ["forward", "gemm"]\n'
        'cell = ["gru"]\nbatch = [2]\nsteps = [5]\ninput = [4]\nhidden = [4, 8, 12, 16]\n'
        "threads = [1]\n"
    )
    return path


def _suite_from(path: Path) -> Suite:
    from harness.bench.suites import load_suite

    return load_suite(str(path))


def test_a_worker_killed_mid_group_costs_no_case(two_workers, tmp_path):
    """SIGKILL to the worker process running a group (the `dask worker` nanny's child): its
    group process and case workers stop, the scheduler gives the group to a worker again,
    and every case is in the file once."""
    suite, out = _suite(SLOW), tmp_path / "killed.json"
    finished: dict = {}

    def run() -> None:
        try:
            finished["doc"] = cluster.run_suite_on_dask(
                suite, out, scheduler=two_workers.address, wait_s=120
            )
        except BaseException as exc:  # re-raised below, in the test's thread
            finished["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    group, case_workers = _a_group_being_timed(two_workers, timeout_s=90)
    records_before = len(json.loads(out.read_text())["cases"]) if out.exists() else 0
    group.parent().kill()
    _all_gone([group, *case_workers], timeout_s=15)
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish"
    if "error" in finished:
        raise finished["error"]
    assert records_before < len(suite.cases), "the kill came after the last group"
    doc = finished["doc"]
    _check_every_case_once(doc, suite)
    assert doc == results.load_results(out)


@pytest.mark.parametrize(
    "stop, code",
    # SIGTERM's handler is held by tests/test_termination.py and test_results_faults.py's
    # SIGTERM test; here its Dask path, 13 s, runs in tox -e test-full
    [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)],
    ids=["SIGINT", "SIGTERM"],
)
def test_an_interrupted_client_stops_its_groups_and_resume_finishes(
    two_workers, tmp_path, stop, code
):
    """Ctrl-C or SIGTERM on `rnnbench bench --scheduler`: the running group's process and its
    case workers stop (the task is cancelled), the file holds whole groups only, and --resume
    times the rest, each case once."""
    suite_file = _write_suite(tmp_path, min_round_s=0.05, rounds=12)
    out = tmp_path / "r.json"
    command = [
        sys.executable, "-m", "harness.cli.main", "bench", "--suite", str(suite_file),
        "--out", str(out), "--scheduler", two_workers.address,
    ]  # fmt: skip
    # SIGINT as a terminal's Ctrl-C gives it: a shell's background job (pytest run with &) ignores
    # SIGINT and its children inherit that, so the client would time on to the end
    client = subprocess.Popen(
        command,
        env=two_workers.env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    group, case_workers = _a_group_being_timed(two_workers, timeout_s=90)
    client.send_signal(stop)
    _, err = client.communicate(timeout=60)
    assert client.returncode == code and "--resume finishes the run" in err, err
    _all_gone([group, *case_workers], timeout_s=20)
    before = len(_loaded(out)["cases"]) if out.exists() else 0
    assert before < len(_suite_from(suite_file).cases), "the interrupt came after the last group"
    resumed = subprocess.run(
        [*command, "--resume"], env=two_workers.env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _check_every_case_once(_loaded(out), _suite_from(suite_file))


def test_a_client_killed_mid_run_stops_its_groups(two_workers, tmp_path):
    """SIGKILL to `rnnbench bench --scheduler`: it sets no cancel event, but the scheduler
    drops its tasks, and every group it had started stops, long before it would end."""
    suite_file = _write_suite(tmp_path, min_round_s=LONG["min_round_s"], rounds=LONG["rounds"])
    command = [
        sys.executable, "-m", "harness.cli.main", "bench", "--suite", str(suite_file),
        "--out", str(tmp_path / "r.json"), "--scheduler", two_workers.address,
    ]  # fmt: skip
    client = subprocess.Popen(command, env=two_workers.env, stderr=subprocess.DEVNULL)
    _a_group_being_timed(two_workers, timeout_s=90)
    client.kill()
    client.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _groups_of(two_workers):
        assert time.monotonic() < deadline, "a group outlived its client"
        time.sleep(0.2)


def test_the_cancel_event_stops_a_running_group(two_workers):
    """The client still waits on the task (the scheduler keeps it running); setting the run's
    distributed.Event alone stops the group's process and its case workers."""
    from harness.cluster import worker_state
    from harness.cluster.task import GroupFailed, time_group

    cases = [c.as_dict() for c in _suite(LONG, hiddens=(8,)).cases]
    with distributed.Client(two_workers.address, timeout="30s") as client:
        worker_state.register(client)
        event = distributed.Event(f"rnnbench-cancel-test-{time.monotonic_ns()}", client)
        future = client.submit(time_group, cases, dict(LONG), False, None, event.name, pure=False)
        group, case_workers = _a_group_being_timed(two_workers, timeout_s=90)
        assert not future.done()
        event.set()
        _all_gone([group, *case_workers], timeout_s=15)
        with pytest.raises(GroupFailed, match="cancelled: the client no longer waits"):
            future.result(timeout=30)


def _groups_of(running: Cluster) -> list:
    """The group processes of this cluster."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "harness.cluster.group_process" not in (proc.info["cmdline"] or []):
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("RNNBENCH_LOCK") == running.env["RNNBENCH_LOCK"]:
                found.append(proc)
    return found


def _a_group_being_timed(running: Cluster, timeout_s: float):
    """(a group process of this cluster, its case workers) once those run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in _groups_of(running):
            with contextlib.suppress(psutil.Error):
                children = proc.children()
                if children:
                    return proc, children
        time.sleep(0.1)
    raise AssertionError("no group was timed within the timeout")


def _all_gone(processes: list, timeout_s: float) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    assert not alive, f"still running: {[p.pid for p in alive]}"


def _probe(address, label="m", commit="c" * 40, dirty=False, gpu=None, nthreads=1):
    environment = {
        "machine": label,
        "cpu": {"model": "EPYC", "logical_cores": 2},
        "gpu": gpu,
        "libraries": {},
        "git": {"commit": commit, "dirty": dirty},
    }
    return {"address": address, "nthreads": nthreads, "environment": environment}


def test_unfit_workers_are_refused_in_one_line_before_anything_is_timed():
    cpu_group = list(_suite(FAST).cases[:2])
    gpu_group = [make_case("torch-cuda", "forward", "gru", batch=2, steps=5, hidden=8)]
    code = {"commit": "c" * 40, "dirty": False}
    one = {"tcp://a:1": {"nthreads": 1, "resources": {}}}
    probes = {"tcp://a:1": _probe("tcp://a:1")}
    cluster.check_workers(one, [cpu_group], probes, {}, code)

    def refused(workers, found, machines=None, groups=(cpu_group,)):
        with pytest.raises(cluster.ClusterError) as info:
            cluster.check_workers(workers, list(groups), found, machines or {}, code)
        assert "\n" not in str(info.value)
        return str(info.value)

    four = {**one, "tcp://b:2": {"nthreads": 4}}
    assert re.search(r"tcp://b:2 runs 4 threads: .*--nthreads 1", refused(four, probes))
    other = {"tcp://a:1": _probe("tcp://a:1", commit="d" * 40, dirty=True)}
    assert "runs rnnbench at commit dddddddddddd with uncommitted changes, the client at " in (
        refused(one, other)
    )
    liar = {"tcp://g:3": {"nthreads": 1, "resources": {"GPU": 1.0}}}
    assert "tcp://g:3 offers the GPU resource but torch sees no CUDA" in refused(
        liar, {"tcp://g:3": _probe("tcp://g:3")}
    )
    assert f"did not look for a CUDA device ({NO_GPU_PROBE} is set there)" in refused(
        liar, {"tcp://g:3": _probe("tcp://g:3", gpu=dict(NOT_PROBED))}
    )
    known = {
        "m": Machine.model_validate(
            {"environment": {**_probe("x")["environment"], "cpu": {"model": "Xeon"}}}
        )
    }
    assert "label 'm' already names another environment" in refused(one, probes, known)
    twins = {**one, "tcp://b:2": {"nthreads": 1}}
    clash = {**probes, "tcp://b:2": _probe("tcp://b:2", gpu={"name": "H100"})}
    assert "tcp://b:2: machine label 'm' already names another" in refused(twins, clash)
    broken = {"tcp://a:1": RuntimeError("no /proc")}
    assert "tcp://a:1 could not describe its machine: no /proc" in refused(one, broken)
    assert re.search(
        r"GPU cases of 1 groups need .*GPU=1.*--device cpu",
        refused(one, probes, groups=(cpu_group, gpu_group)),
    )
    h100 = {"tcp://g:3": _probe("tcp://g:3", label="h100", gpu={"name": "H100"})}
    cluster.check_workers({**one, **liar}, [cpu_group, gpu_group], {**probes, **h100}, {}, code)


def test_a_group_of_both_devices_is_two_tasks_one_of_them_for_a_gpu_worker():
    from harness.bench.suites import load_suite

    suite = load_suite("deepbench")
    parts = cluster.tasks(suite.groups())
    assert sorted(c.id for part in parts for c in part) == sorted(c.id for c in suite.cases)
    assert all(len({c.device for c in part}) == 1 for part in parts)
    mixed = [g for g in suite.groups() if len({c.device for c in g}) == 2]
    assert mixed and len(parts) == len(suite.groups()) + len(mixed)
    assert sum(map(cluster.needs_gpu, parts)) == sum(map(cluster.needs_gpu, suite.groups()))


def test_a_worker_at_another_commit_is_refused_before_anything_is_timed(
    two_workers, tmp_path, monkeypatch
):
    from harness.machine import environment as metadata

    own = metadata.collect_git().get("commit")
    if not own:
        pytest.skip("not a git checkout: the workers know no commit to compare")
    monkeypatch.setattr(metadata, "collect_git", lambda: {"commit": "1" * 40, "dirty": False})
    out = tmp_path / "r.json"
    with pytest.raises(cluster.ClusterError, match=rf"runs rnnbench at commit {own[:12]}") as info:
        cluster.run_suite_on_dask(_suite(FAST), out, scheduler=two_workers.address)
    assert "the client at commit 111111111111" in str(info.value)
    assert str(info.value).count("Dask worker") == 2  # both named, in one line
    assert not out.exists()  # nothing timed, nothing written


class _Lost:
    def done(self):
        return True

    def result(self):
        raise distributed.client.FutureCancelledError("rnnbench-group-0", reason="worker died")


def test_a_lost_group_is_recorded_once_as_an_error_and_resume_times_it_again(tmp_path):
    from harness.bench import resume
    from harness.bench.recorder import Recorder

    suite, out = _suite(FAST, hiddens=(4, 8)), tmp_path / "r.json"
    groups = [list(g) for g in suite.groups()]
    doc = resume.open_document(
        suite, out, False, False, resume.client_info({}, scheduler="tcp://s:1")
    )
    recorder = Recorder(doc, out, suite, len(suite.cases), None)
    dispatch = cluster.Dispatch(None, FAST, {}, recorder, wait_s=1)
    dispatch.futures = {_Lost(): (0, groups[0]), _Lost(): (0, groups[0])}  # one group, twice
    dispatch.collect()
    saved = results.load_results(out)
    assert [r.status for r in saved.cases] == ["error", "error"]
    assert all("worker died" in r.reason and r.machine is None for r in saved.cases)
    assert saved.machines == {}
    assert results.done_ids(saved) == set()  # --resume times them again
    from harness.analysis.report import write_report

    with pytest.raises(results.ResultsError, match=r"holds no case any machine timed \(2 cases"):
        write_report([str(out)], tmp_path / "report")


def test_a_worker_that_joins_unfit_is_retired_and_its_groups_run_elsewhere(
    two_workers, tmp_path, capfd
):
    suite, out = _suite(SLOW, hiddens=(4, 6, 8, 10, 12, 14)), tmp_path / "late.json"
    finished: dict = {}

    def run() -> None:
        try:
            finished["doc"] = cluster.run_suite_on_dask(
                suite, out, scheduler=two_workers.address, wait_s=120
            )
        except BaseException as exc:
            finished["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    _a_group_being_timed(two_workers, timeout_s=90)
    two_workers.add_worker("gamma", "--nthreads", "2")  # joins after the up-front check
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish"
    if "error" in finished:
        raise finished["error"]
    doc = finished["doc"]
    _check_every_case_once(doc, suite)
    assert set(doc.machines) <= {"alpha", "beta"}
    err = capfd.readouterr().err
    assert re.search(r"retiring Dask worker tcp://127.0.0.1:\d+: .* runs 2 threads", err)
    assert two_workers.workers.pop("gamma").wait(timeout=60) is not None  # it was closed


def test_a_cancelled_group_stops_and_a_group_without_result_fails(tmp_path):
    from harness.cluster.task import GroupFailed, run_group_process

    case = make_case("numpy", "forward", "gru", batch=2, steps=5, input_size=4, hidden=8)
    started = time.monotonic()
    with pytest.raises(GroupFailed, match="cancelled: the client no longer waits"):
        run_group_process([case.as_dict()], dict(SLOW), cancelled=lambda: True)
    assert time.monotonic() - started < 30
    with pytest.raises(GroupFailed, match=r"exited with code 1: .*SuiteError: mode: missing"):
        run_group_process([{"backend": "numpy"}], dict(SLOW))


def test_bad_cluster_arguments_fail_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    common = ["bench", "--suite", "quick", "--only", "numpy/peak", "--out", out]
    assert main([*common, "--scheduler", "tcp://127.0.0.1:1", "--machine", "x"]) == 2
    assert "with --scheduler each worker's machine is named" in capsys.readouterr().err
    assert main([*common, "--scheduler-file", str(tmp_path / "none.json")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert (
        last.startswith("rnnbench: error: --scheduler-file") and "none.json: no such file" in last
    )
    assert not Path(out).exists()


def test_no_worker_within_the_wait_is_a_clear_error(tmp_path):
    with (
        distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as empty,
        pytest.raises(cluster.ClusterError, match=r"no Dask worker joined .* within 1 s"),
    ):
        cluster.run_suite_on_dask(
            _suite(FAST), tmp_path / "r.json", scheduler=empty.scheduler_address, wait_s=1
        )
