"""What a Dask worker runs for one interleaved group (harness.cluster.runner submits it): check
that the worker is fit to time it, run the group in a process of its own
(harness.cluster.group_process), and answer with the records and the machine that timed them.

A worker is fit when it runs one task at a time (`--nthreads 1`), runs the client's code of
rnnbench (the same commit, both clean or both with uncommitted changes, where both know
theirs) and, for GPU cases, torch sees a CUDA device there. An unfit worker raises WorkerUnfit
before timing anything: the client retires it and gives the group to another worker.

The machine's environment and selfcheck are kept per worker process by
harness.cluster.worker_state. Once nobody waits for the group, its process and its case workers
are stopped within POLL_S or so, and the lock with them: the client sets the run's cancel event
(Ctrl-C, an error), or the scheduler no longer has this worker running the task (the client
went away without a word)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.json_values import JsonObject
from harness.machine.environment import NO_GPU_PROBE, gpu_label

POLL_S = 0.5


class WorkerUnfit(RuntimeError):
    """A worker that must not time the group: args (its address, why)."""

    def __init__(self, address: str, message: str):
        super().__init__(address, message)
        self.address, self.message = address, message

    def __str__(self) -> str:
        return self.message


class GroupFailed(RuntimeError):
    pass


def time_group(
    cases: list[dict],
    timing: dict[str, float],
    needs_gpu: bool,
    code: dict | None = None,
    cancel_event: str | None = None,
) -> JsonObject:
    """code: the client's git {commit, dirty} (None or no commit: not checked); cancel_event:
    the name of the distributed.Event the client sets when it gives up on the run."""
    from distributed import get_worker

    from harness.cluster import worker_state

    worker = get_worker()
    found = probe()
    problem = unfit(found, needs_gpu, code)
    if problem:
        raise WorkerUnfit(worker.address, problem)
    state = worker_state.of(worker)
    records, measured = run_group_process(
        cases, timing, selfcheck=state.selfcheck is None, cancelled=_cancelled(cancel_event)
    )
    state.selfcheck = state.selfcheck or measured
    return {
        "machine": {"environment": found["environment"], "selfcheck": state.selfcheck},
        "host": platform.node(),
        "worker": worker.address,
        "records": records,
    }


def probe(dask_worker=None) -> JsonObject:
    """What the client checks before it sends a worker groups (run there by client.run, which
    passes dask_worker, and by every task): its address and threads, and its machine's
    environment, with the git state of the code it would run read afresh."""
    from distributed import get_worker

    from harness.cluster import worker_state
    from harness.machine.environment import collect_environment, collect_git

    worker = dask_worker or get_worker()
    state = worker_state.of(worker)
    if state.environment is None:
        state.environment = collect_environment()
    return {
        "address": worker.address,
        "nthreads": worker.identity()["nthreads"],
        "environment": {**state.environment, "git": collect_git()},
    }


def unfit(found: JsonObject, needs_gpu: bool, code: dict | None) -> str | None:
    """Why the probed worker must not time a group (None: it may)."""
    address, environment = found["address"], found["environment"]
    if found["nthreads"] != 1:
        return (
            f"Dask worker {address} runs {found['nthreads']} threads: a benchmark worker must "
            "run one group at a time (`dask worker ADDRESS --nthreads 1`)"
        )
    own = environment.get("git") or {}
    known = code is not None and code.get("commit") and own.get("commit")
    if (
        code is not None
        and known
        and (own["commit"], own.get("dirty")) != (code["commit"], code.get("dirty"))
    ):
        return (
            f"Dask worker {address} runs rnnbench at {_code(own)}, the client at "
            f"{_code(code)}: every group must be timed by the same code"
        )
    gpu = gpu_label(environment.get("gpu"))
    if needs_gpu and gpu == "not probed":
        return (
            f"Dask worker {address} offers the GPU resource but did not look for a CUDA device "
            f"({NO_GPU_PROBE} is set there): unset it, or start it without `--resources GPU=1`"
        )
    if needs_gpu and gpu == "none":
        return (
            f"Dask worker {address} offers the GPU resource but torch sees no CUDA device "
            "there: start it without `--resources GPU=1`"
        )
    return None


def _code(git: dict) -> str:
    return f"commit {git['commit'][:12]}" + (
        " with uncommitted changes" if git.get("dirty") else ""
    )


def _cancelled(cancel_event: str | None):
    """A test, for the task this thread runs, of whether nobody waits for its answer: the client
    set cancel_event, or the scheduler no longer has this worker running the task (the client
    went away without setting it, or the group went to another worker)."""
    from distributed import Event, get_client, get_worker

    worker, client = get_worker(), get_client()
    key = worker.get_current_task()
    event = Event(cancel_event, client) if cancel_event else None

    def cancelled() -> bool:
        try:
            if event is not None and event.is_set():
                return True
            return key not in client.processing().get(worker.address, ())
        except (OSError, TimeoutError):  # no scheduler to ask: a worker that lost it closes
            return False

    return cancelled


def run_group_process(
    cases: list[dict], timing: dict[str, float], selfcheck: bool = False, cancelled=None
) -> tuple[list[dict], dict | None]:
    """(the group's records, the machine's selfcheck if asked for, else None), timed by
    `python -m harness.cluster.group_process`; stopped (and a GroupFailed raised) as soon as
    cancelled() says nobody waits for them."""
    with tempfile.TemporaryDirectory(prefix="rnnbench-group-") as folder:
        request, result = Path(folder, "request.json"), Path(folder, "result.json")
        log = Path(folder, "group.log")
        asked = {"cases": cases, "timing": timing, "selfcheck": selfcheck}
        request.write_text(json.dumps(asked), encoding="utf-8")
        command = [sys.executable, "-m", "harness.cluster.group_process", str(os.getpid())]
        with open(log, "wb") as output:
            proc = subprocess.Popen(
                [*command, str(request), str(result)], stdout=output, stderr=subprocess.STDOUT
            )
            try:
                while proc.poll() is None:
                    if cancelled is not None and cancelled():
                        raise GroupFailed("cancelled: the client no longer waits for this group")
                    time.sleep(POLL_S)
            finally:  # cancelled, or cancelled() failed: the group stops with the task
                if proc.poll() is None:
                    _terminate(proc)
        if proc.returncode != 0 or not result.exists():
            text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            tail = " | ".join(text[-3:]) or "(no output)"
            raise GroupFailed(f"the group's process exited with code {proc.returncode}: {tail}")
        answer = json.loads(result.read_text(encoding="utf-8"))
        return answer["records"], answer["selfcheck"]


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()  # the group process kills its case workers, then exits
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
