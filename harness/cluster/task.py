"""What a Dask worker runs for one interleaved group (harness.cluster.runner submits it): check
that the worker is fit to time it, run the group in a process of its own
(harness.cluster.group_process), and answer with the records and the machine that timed them.

A worker is fit when it runs one task at a time (`--nthreads 1`), runs the client's code of
rnnbench (the same commit, both clean or both with uncommitted changes, where both know
theirs) and, for GPU cases, torch sees a CUDA device there. An unfit worker raises WorkerUnfit
before timing anything: the client retires it and gives the group to another worker.

When the client goes away (Ctrl-C, an error) the scheduler cancels the task; the group's
process and its case workers are then stopped within POLL_S or so, and the lock with them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

POLL_S = 0.5
_ENVIRONMENT: dict[str, Any] | None = None  # this worker process's machine, collected once
_SELFCHECK: dict[str, float] | None = None  # measured by its first group


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
    cases: list[dict], timing: dict[str, float], needs_gpu: bool, code: dict | None = None
) -> dict[str, Any]:
    """code: the client's git {commit, dirty} (None or no commit: not checked)."""
    from distributed import get_worker

    worker = get_worker()
    found = probe()
    problem = unfit(found, needs_gpu, code)
    if problem:
        raise WorkerUnfit(worker.address, problem)
    records, selfcheck = run_group_process(cases, timing, cancelled=_cancelled(worker))
    return {
        "machine": {"environment": found["environment"], "selfcheck": selfcheck},
        "host": platform.node(),
        "worker": worker.address,
        "records": records,
    }


def probe(dask_worker=None) -> dict[str, Any]:
    """What the client checks before it sends a worker groups (run there by client.run, which
    passes dask_worker, and by every task): its address and threads, and its machine's
    environment, with the git state of the code it would run read afresh."""
    from distributed import get_worker

    from harness.machine.environment import collect_environment, collect_git

    global _ENVIRONMENT
    worker = dask_worker or get_worker()
    if _ENVIRONMENT is None:
        _ENVIRONMENT = collect_environment()
    return {
        "address": worker.address,
        "nthreads": worker.state.nthreads,
        "environment": {**_ENVIRONMENT, "git": collect_git()},
    }


def unfit(found: dict[str, Any], needs_gpu: bool, code: dict | None) -> str | None:
    """Why the probed worker must not time a group (None: it may)."""
    address, environment = found["address"], found["environment"]
    if found["nthreads"] != 1:
        return (
            f"Dask worker {address} runs {found['nthreads']} threads: a benchmark worker must "
            "run one group at a time (`dask worker ADDRESS --nthreads 1`)"
        )
    own = environment.get("git") or {}
    known = code and code.get("commit") and own.get("commit")
    if known and (own["commit"], own.get("dirty")) != (code["commit"], code.get("dirty")):
        return (
            f"Dask worker {address} runs rnnbench at {_code(own)}, the client at "
            f"{_code(code)}: every group must be timed by the same code"
        )
    if needs_gpu and not environment.get("gpu"):
        return (
            f"Dask worker {address} offers the GPU resource but torch sees no CUDA device "
            "there: start it without `--resources GPU=1`"
        )
    return None


def _code(git: dict) -> str:
    return f"commit {git['commit'][:12]}" + (
        " with uncommitted changes" if git.get("dirty") else ""
    )


def _cancelled(worker):
    """A test of whether the scheduler has given up on the task this thread runs."""
    from distributed.worker import thread_state

    key = getattr(thread_state, "key", None)

    def cancelled() -> bool:
        task = worker.state.tasks.get(key)
        return task is None or task.state in ("cancelled", "released")

    return cancelled


def run_group_process(
    cases: list[dict], timing: dict[str, float], cancelled=None
) -> tuple[list[dict], dict]:
    """(the group's records, the machine's selfcheck: measured by this process's first
    group), timed by `python -m harness.cluster.group_process`; stopped (and a GroupFailed
    raised) as soon as cancelled() says nobody waits for them."""
    global _SELFCHECK
    with tempfile.TemporaryDirectory(prefix="rnnbench-group-") as folder:
        request, result = Path(folder, "request.json"), Path(folder, "result.json")
        log = Path(folder, "group.log")
        asked = {"cases": cases, "timing": timing, "selfcheck": _SELFCHECK is None}
        request.write_text(json.dumps(asked), encoding="utf-8")
        command = [sys.executable, "-m", "harness.cluster.group_process", str(os.getpid())]
        with open(log, "wb") as output:
            proc = subprocess.Popen(
                [*command, str(request), str(result)], stdout=output, stderr=subprocess.STDOUT
            )
            while proc.poll() is None:
                if cancelled is not None and cancelled():
                    _terminate(proc)
                    raise GroupFailed("cancelled: the client no longer waits for this group")
                time.sleep(POLL_S)
        if proc.returncode != 0 or not result.exists():
            text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            tail = " | ".join(text[-3:]) or "(no output)"
            raise GroupFailed(f"the group's process exited with code {proc.returncode}: {tail}")
        answer = json.loads(result.read_text(encoding="utf-8"))
        _SELFCHECK = _SELFCHECK or answer["selfcheck"]
        return answer["records"], _SELFCHECK


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()  # the group process kills its case workers, then exits
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
