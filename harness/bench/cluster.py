"""Runs a suite on a Dask cluster: each interleaved group is one task, taken by a worker
(`dask worker ADDRESS --nthreads 1`, one per machine) that times it in processes of its own
under the machine lock (harness.bench.cluster_task). The client enters every answer into the
results file as it arrives, atomically, exactly as a local run does (engine.Recorder).

A group's GPU cases are a task of their own that asks for the worker resource GPU
(`--resources GPU=1`); its CPU cases run on any worker. The run is refused up front when no
worker offers GPU for GPU cases, and when any worker runs more than one thread.
A worker that dies mid-group is Dask's to handle: the scheduler gives the group to another
worker, and after `distributed.scheduler.allowed-failures` deaths marks it lost; a lost
group is recorded once, as an error with the reason, and --resume times it again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.bench import engine
from harness.bench.case import BenchCase
from harness.bench.suites import Suite

GPU_RESOURCE = "GPU"
POLL_S = 0.2
CHECK_S = 2.0  # how often to ask the scheduler whether any worker can take the rest


class ClusterError(RuntimeError):
    """The cluster cannot run this suite; the message says what to change."""


def run_suite_on_dask(
    suite: Suite,
    out: str | Path,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable | None = None,
    wait_s: float = 60.0,
) -> dict[str, Any]:
    """Like engine.run_suite, on the workers of the scheduler at `scheduler` (or named by
    `scheduler_file`). wait_s: how long to wait for a first worker, and for any worker able
    to take the remaining groups, before giving up with a ClusterError."""
    out = Path(out)
    with connect(scheduler, scheduler_file) as client:
        address = client.scheduler.address
        doc = engine.open_document(suite, out, resume, overwrite, engine.client_info(None, address))
        todo = engine.remaining_groups(suite, doc)
        recorder = engine.Recorder(doc, out, suite, sum(len(g) for g in todo), progress)
        if todo:
            parts = tasks(todo)
            workers = wait_for_workers(client, address, wait_s)
            check_workers(workers, parts)
            collect(client, submit(client, parts, suite.timing), recorder, wait_s)
        recorder.save(finished=True)
    return doc


def connect(scheduler: str | None, scheduler_file: str | None):
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ClusterError(
            "--scheduler needs Dask: pip install 'rnnbench[cluster]' (dask[distributed])"
        ) from None
    if scheduler_file and not Path(scheduler_file).is_file():
        raise ClusterError(f"--scheduler-file {scheduler_file}: no such file")
    where = scheduler or f"the scheduler of {scheduler_file}"
    try:
        return Client(address=scheduler, scheduler_file=scheduler_file, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {where}: {exc}") from None


def wait_for_workers(client, address: str, wait_s: float) -> dict[str, dict]:
    deadline = time.monotonic() + wait_s
    while not (workers := client.scheduler_info(n_workers=-1)["workers"]):
        if time.monotonic() > deadline:
            raise ClusterError(
                f"no Dask worker joined the scheduler at {address} within {wait_s:.0f} s: "
                f"start one per machine with `dask worker {address} --nthreads 1`"
            )
        time.sleep(0.5)
    return workers


def needs_gpu(group: list[BenchCase]) -> bool:
    return any(case.device == "gpu" for case in group)


def tasks(todo: list[list[BenchCase]]) -> list[list[BenchCase]]:
    """Each group split by device: its CPU cases may run on any worker, its GPU cases only
    where the resource GPU is offered (a suite such as deepbench puts torch-cpu and
    torch-cuda of one shape in one group). Each part is interleaved on one machine."""
    parts = []
    for group in todo:
        for device in ("cpu", "gpu"):
            part = [case for case in group if case.device == device]
            if part:
                parts.append(part)
    return parts


def check_workers(workers: dict[str, dict], todo: list[list[BenchCase]]) -> None:
    """Refuse workers that would time two groups at once, and GPU cases no worker can take."""
    for address, info in sorted(workers.items()):
        if info.get("nthreads") != 1:
            raise ClusterError(
                f"Dask worker {address} runs {info.get('nthreads')} threads: start benchmark "
                "workers with `dask worker ADDRESS --nthreads 1`, one per machine"
            )
    gpu_parts = sum(needs_gpu(g) for g in todo)
    offered = [a for a, i in workers.items() if (i.get("resources") or {}).get(GPU_RESOURCE)]
    if gpu_parts and not offered:
        raise ClusterError(
            f"the GPU cases of {gpu_parts} groups need a worker with the resource "
            f"{GPU_RESOURCE} and none of the {len(workers)} workers offers it: start the GPU "
            f"machines' workers with `dask worker ADDRESS --nthreads 1 --resources "
            f"{GPU_RESOURCE}=1`, or time CPU targets only (--only TARGET)"
        )


def submit(client, todo: list[list[BenchCase]], timing: dict[str, float]) -> dict:
    from harness.bench.cluster_task import time_group
    from harness.bench.metadata import collect_git

    commit, futures = collect_git().get("commit"), {}
    for number, group in enumerate(todo):
        gpu = needs_gpu(group)
        future = client.submit(
            time_group,
            [case.as_dict() for case in group],
            dict(timing),
            gpu,
            commit,
            key=f"rnnbench-group-{number}-{time.monotonic_ns()}",
            pure=False,
            priority=-number,  # the suite's order, as far as the workers allow
            resources={GPU_RESOURCE: 1} if gpu else None,
        )
        futures[future] = group
    return futures


def collect(client, futures: dict, recorder: engine.Recorder, wait_s: float) -> None:
    """Each group's answer into the file as it arrives; a group Dask gave up on, once, as
    errors. Gives up (ClusterError) when for wait_s no connected worker could take what is
    left; the file then holds every group answered so far."""
    pending, stuck_since, checked = list(futures), None, 0.0
    while pending:
        done = [f for f in pending if f.done()]  # finished, failed or cancelled
        pending = [f for f in pending if f not in done]
        for future in done:
            enter(future, futures[future], recorder)
        if done:
            stuck_since = None
            continue
        time.sleep(POLL_S)
        if time.monotonic() - checked < CHECK_S:
            continue
        checked = time.monotonic()
        if _someone_can_run(client, [futures[f] for f in pending]):
            stuck_since = None
        elif stuck_since is None:
            stuck_since = checked
        elif checked - stuck_since > wait_s:
            raise ClusterError(
                f"no connected Dask worker could take the {len(pending)} remaining groups "
                f"for {wait_s:.0f} s; the groups timed so far are in {recorder.out}: "
                "start workers and finish with --resume"
            )


def enter(future, group: list[BenchCase], recorder: engine.Recorder) -> None:
    try:
        answer = future.result()
    except Exception as exc:  # KilledWorker, WorkerUnfit, GroupFailed, cancelled: lost
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else repr(exc)
        recorder.group([engine.lost(engine.new_record(c), reason) for c in group], None)
        return
    recorder.group(answer["records"], answer["machine"], answer["host"], answer["worker"])


def _someone_can_run(client, groups: list[list[BenchCase]]) -> bool:
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        return False
    if all(needs_gpu(g) for g in groups):
        return any((i.get("resources") or {}).get(GPU_RESOURCE) for i in workers.values())
    return True
