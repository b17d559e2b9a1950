"""What a Dask worker runs for one interleaved group (harness.bench.cluster submits it): check
that the worker is fit to time it, run the group in a process of its own
(harness.bench.group_process), and answer with the records and the machine that timed them.

A worker is fit when it runs one task at a time (`--nthreads 1`) and, for a group on a GPU
target, torch sees a CUDA device there. An unfit worker raises WorkerUnfit: the client records
the group as an error naming the worker and what to change."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_MACHINE: dict[str, Any] | None = None  # this worker process's machine, collected once


class WorkerUnfit(RuntimeError):
    pass


class GroupFailed(RuntimeError):
    pass


def time_group(cases: list[dict], timing: dict[str, float], needs_gpu: bool) -> dict[str, Any]:
    from distributed import get_worker

    worker = get_worker()
    nthreads = worker.state.nthreads
    if nthreads != 1:
        raise WorkerUnfit(
            f"Dask worker {worker.address} runs {nthreads} threads: a benchmark worker must "
            "run one group at a time (`dask worker ADDRESS --nthreads 1`)"
        )
    machine = this_machine()
    if needs_gpu and not machine["environment"].get("gpu"):
        raise WorkerUnfit(
            f"Dask worker {worker.address} offers the GPU resource but torch sees no CUDA "
            "device there: start it without `--resources GPU=1`"
        )
    records = run_group_process(cases, timing)
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


def run_group_process(cases: list[dict], timing: dict[str, float]) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="rnnbench-group-") as folder:
        request, result = Path(folder, "request.json"), Path(folder, "result.json")
        request.write_text(json.dumps({"cases": cases, "timing": timing}), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "harness.bench.group_process", str(request), str(result)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not result.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or "(no output)"
            raise GroupFailed(f"the group's process exited with code {done.returncode}: {tail}")
        return json.loads(result.read_text(encoding="utf-8"))["records"]
