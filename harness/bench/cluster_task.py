"""What a Dask worker runs for one interleaved group (harness.bench.cluster submits it): check
that the worker is fit to time it, run the group in a process of its own
(harness.bench.group_process), and answer with the records and the machine that timed them.

A worker is fit when it runs one task at a time (`--nthreads 1`), runs the client's commit of
rnnbench (where both know theirs) and, for a group on a GPU target, torch sees a CUDA device
there. An unfit worker raises WorkerUnfit before timing anything: the client records the group
as an error naming the worker and what to change.

When the client goes away (Ctrl-C, an error) the scheduler cancels the task; the group's
process is then killed within POLL_S, and with it the lock it holds."""

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
_MACHINE: dict[str, Any] | None = None  # this worker process's machine, collected once


class WorkerUnfit(RuntimeError):
    pass


class GroupFailed(RuntimeError):
    pass


def time_group(
    cases: list[dict], timing: dict[str, float], needs_gpu: bool, commit: str | None = None
) -> dict[str, Any]:
    """commit: the client's rnnbench commit (None: unknown, not checked)."""
    from distributed import get_worker

    worker = get_worker()
    nthreads = worker.state.nthreads
    if nthreads != 1:
        raise WorkerUnfit(
            f"Dask worker {worker.address} runs {nthreads} threads: a benchmark worker must "
            "run one group at a time (`dask worker ADDRESS --nthreads 1`)"
        )
    machine = this_machine()
    own = (machine["environment"].get("git") or {}).get("commit")
    if commit and own and own != commit:
        raise WorkerUnfit(
            f"Dask worker {worker.address} runs rnnbench at commit {own[:12]}, the client at "
            f"{commit[:12]}: every group must be timed by the same code"
        )
    if needs_gpu and not machine["environment"].get("gpu"):
        raise WorkerUnfit(
            f"Dask worker {worker.address} offers the GPU resource but torch sees no CUDA "
            "device there: start it without `--resources GPU=1`"
        )
    records = run_group_process(cases, timing, cancelled=_cancelled(worker))
    return {
        "machine": machine,
        "host": platform.node(),
        "worker": worker.address,
        "records": records,
    }


def this_machine() -> dict[str, Any]:
    """{environment, selfcheck} of the machine this worker runs on (RNNBENCH_MACHINE or the
    hostname labels it), collected under the machine lock the first time it is asked."""
    global _MACHINE
    if _MACHINE is None:
        from harness.bench.engine import selfcheck
        from harness.bench.machine_lock import machine_lock
        from harness.bench.metadata import collect_environment

        with machine_lock(notice=lambda m: None):
            _MACHINE = {"environment": collect_environment(), "selfcheck": selfcheck()}
    return _MACHINE


def _cancelled(worker):
    """A test of whether the scheduler has given up on the task this thread runs."""
    from distributed.worker import thread_state

    key = getattr(thread_state, "key", None)

    def cancelled() -> bool:
        task = worker.state.tasks.get(key)
        return task is None or task.state in ("cancelled", "released")

    return cancelled


def run_group_process(cases: list[dict], timing: dict[str, float], cancelled=None) -> list[dict]:
    """The group's records, timed by `python -m harness.bench.group_process`; killed (and a
    GroupFailed raised) as soon as cancelled() says nobody waits for them."""
    with tempfile.TemporaryDirectory(prefix="rnnbench-group-") as folder:
        request, result = Path(folder, "request.json"), Path(folder, "result.json")
        log = Path(folder, "group.log")
        request.write_text(json.dumps({"cases": cases, "timing": timing}), encoding="utf-8")
        command = [sys.executable, "-m", "harness.bench.group_process", str(os.getpid())]
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
        return json.loads(result.read_text(encoding="utf-8"))["records"]


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()  # the group process kills its case workers, then exits
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
