"""Runs a suite on a Dask cluster: each interleaved group is one task, taken by a worker
(`dask worker ADDRESS --nthreads 1`, one per machine) that times it in processes of its own
under the machine lock (harness.cluster.task). The client enters every answer into the
results file as it arrives, atomically, exactly as a local run does (harness.bench.recorder).

A group's GPU cases are a task of their own that asks for the worker resource GPU
(`--resources GPU=1`); its CPU cases run on any worker. Before anything is timed, every
connected worker is probed, and the run refused in one line if one would time two groups at
once, runs other code, claims a GPU it lacks or reuses a label of another environment, or if
no worker offers GPU for GPU cases. A worker that joins later and is unfit is retired, and
its group given to another worker.

A worker that dies mid-group is Dask's to handle: the scheduler gives the group to another
worker, and once more than `distributed.scheduler.allowed-failures` (3) workers have died
running it, marks it lost; a lost group is recorded once, as errors with the reason, and
--resume times it again."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import termination
from harness.bench.case import BenchCase
from harness.bench.group import lost, new_record
from harness.bench.recorder import Recorder
from harness.bench.resume import client_info, open_document, remaining_groups
from harness.bench.suites import Suite
from harness.json_values import JsonObject
from harness.records import store as results
from harness.records.results import Machine, Timing

GPU_RESOURCE = "GPU"
POLL_S = 0.2
MAX_TRIES = 3  # workers that may refuse one group before it is recorded as lost
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
) -> JsonObject:
    """Like engine.run_suite, on the workers of the scheduler at `scheduler` (or named by
    `scheduler_file`). wait_s: how long to wait for a first worker (and for a GPU worker when
    there are GPU cases), and for any worker able to take the remaining groups, before giving
    up with a ClusterError."""
    from harness.bench.writer_lock import results_writer
    from harness.cluster import worker_state
    from harness.cluster.task import probe
    from harness.machine.environment import collect_git

    out = Path(out)
    results.check_writable(out)
    with results_writer(out), connect(scheduler, scheduler_file) as client:
        address, code = client.scheduler.address, collect_git()
        started_from = client_info(code, scheduler=address)
        doc = open_document(suite, out, resume, overwrite, started_from)
        todo = remaining_groups(suite, doc)
        recorder = Recorder(doc, out, suite, sum(len(g) for g in todo), progress)
        if todo:
            parts = tasks(todo)
            gpu = any(map(needs_gpu, parts))
            workers = wait_for_workers(client, address, wait_s, gpu)
            worker_state.register(client)  # on every worker, present and future
            probes = client.run(probe, on_error="return")
            check_workers(workers, parts, probes, doc.machines, code)
            recorder.save()  # the file can be written: found before a group is timed
            Dispatch(client, suite.timing, code, recorder, wait_s).run(parts)
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


def wait_for_workers(client, address: str, wait_s: float, gpu: bool) -> dict[str, dict]:
    """The workers once one has joined and, for GPU cases, one offers GPU (or wait_s passed:
    check_workers then says what is missing)."""
    deadline = time.monotonic() + wait_s
    while True:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if workers and (not gpu or _gpu_workers(workers)):
            return workers
        if time.monotonic() > deadline:
            if workers:
                return workers
            raise ClusterError(
                f"no Dask worker joined the scheduler at {address} within {wait_s:.0f} s: "
                f"start one per machine with `dask worker {address} --nthreads 1`"
            )
        termination.sleep(0.5)


def _gpu_workers(workers: dict[str, dict]) -> list[str]:
    return [a for a, i in workers.items() if (i.get("resources") or {}).get(GPU_RESOURCE)]


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


def check_workers(
    workers: dict[str, dict],
    todo: list[list[BenchCase]],
    probes: JsonObject | None = None,
    machines: JsonObject | None = None,
    code: dict | None = None,
) -> None:
    """Refuse, in one line naming every unfit worker, workers that would time two groups at
    once, run other code, claim a GPU they lack or reuse a label of another environment
    (probes: harness.cluster.task.probe's answer from each worker), and GPU cases no worker
    takes."""
    from harness.cluster.task import unfit

    problems = []
    for address, info in sorted(workers.items()):
        if info.get("nthreads") != 1:
            problems.append(
                f"Dask worker {address} runs {info.get('nthreads')} threads: start benchmark "
                "workers with `dask worker ADDRESS --nthreads 1`, one per machine"
            )
    seen = dict(machines or {})
    for address, found in sorted((probes or {}).items()):
        if isinstance(found, BaseException):
            problems.append(f"Dask worker {address} could not describe its machine: {found}")
            continue
        offers_gpu = (workers.get(address, {}).get("resources") or {}).get(GPU_RESOURCE)
        problem = unfit(found, bool(offers_gpu), code)
        conflict = results.label_conflict(seen, found["environment"])
        if problem or conflict:
            problems.append(f"{problem or f'Dask worker {address}: {conflict}'}")
        else:
            seen.setdefault(
                found["environment"]["machine"],
                Machine.model_validate({"environment": found["environment"]}),
            )
    gpu_parts = sum(needs_gpu(g) for g in todo)
    if gpu_parts and not _gpu_workers(workers):
        problems.append(
            f"the GPU cases of {gpu_parts} groups need a worker with the resource "
            f"{GPU_RESOURCE} and none of the {len(workers)} workers offers it: start the GPU "
            f"machines' workers with `dask worker ADDRESS --nthreads 1 --resources "
            f"{GPU_RESOURCE}=1`, or time the CPU cases only (--device cpu)"
        )
    if problems:
        raise ClusterError("; ".join(problems))


class Dispatch:
    """The groups as Dask tasks, their answers into the file as they arrive. A worker found
    unfit (it raised WorkerUnfit, or its label names another environment in the file) is
    retired and its group given to another worker, up to MAX_TRIES times; a group Dask gave
    up on (its workers died) is recorded once, as errors. A run that ends early (Ctrl-C, an
    error) sets the distributed.Event named cancel_event: the running groups stop."""

    def __init__(self, client, timing, code: dict, recorder: Recorder, wait_s):
        self.client, self.code = client, code
        self.timing = Timing.model_validate(timing).model_dump()  # settings or a dict of them
        self.recorder, self.wait_s = recorder, wait_s
        self.cancel_event = f"rnnbench-cancel-{uuid.uuid4().hex}"
        self.futures: dict[Any, tuple[int, list[BenchCase]]] = {}
        self.tries: dict[int, int] = {}
        self.retired: set[str] = set()  # workers this run retired: they take nothing more

    def run(self, parts: list[list[BenchCase]]) -> None:
        try:
            for number, group in enumerate(parts):
                self.submit(number, group)
            self.collect()
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Tell the workers timing this run's groups that nobody waits for them."""
        from distributed import Event

        with contextlib.suppress(Exception):  # the scheduler may be gone
            Event(self.cancel_event, self.client).set()

    def submit(self, number: int, group: list[BenchCase]) -> None:
        from harness.cluster.task import time_group

        gpu = needs_gpu(group)
        future = self.client.submit(
            time_group,
            [case.as_dict() for case in group],
            self.timing,
            gpu,
            self.code,
            self.cancel_event,
            key=f"rnnbench-group-{number}-{time.monotonic_ns()}",
            pure=False,
            priority=-number,  # the suite's order, as far as the workers allow
            resources={GPU_RESOURCE: 1} if gpu else None,
        )
        self.futures[future] = (number, group)

    def collect(self) -> None:
        """Gives up (ClusterError) when for wait_s no connected worker could take what is
        left; the file then holds every group answered so far."""
        stuck_since, checked = None, 0.0
        while self.futures:
            done = [f for f in self.futures if f.done()]  # finished, failed or cancelled
            for future in done:
                self.enter(future)
            if done:
                stuck_since = None
                continue
            termination.sleep(POLL_S)
            if time.monotonic() - checked < CHECK_S:
                continue
            checked = time.monotonic()
            if _someone_can_run(self.client, self.futures, self.retired):
                stuck_since = None
            elif stuck_since is None:
                stuck_since = checked
            elif checked - stuck_since > self.wait_s:
                raise ClusterError(
                    f"no connected Dask worker could take the {len(self.futures)} remaining "
                    f"groups for {self.wait_s:.0f} s; the groups timed so far are in "
                    f"{self.recorder.out}: start workers and finish with --resume"
                )

    def enter(self, future) -> None:
        from harness.cluster.task import WorkerUnfit

        number, group = self.futures.pop(future)
        try:
            answer = future.result()
        except WorkerUnfit as exc:
            self.refuse(exc.address, str(exc), number, group)
            return
        except Exception as exc:  # KilledWorker, GroupFailed, cancelled: the group is lost
            self.lose(group, f"{type(exc).__name__}: {exc}".splitlines()[0])
            return
        conflict = results.label_conflict(
            self.recorder.doc.machines, answer["machine"]["environment"]
        )
        if conflict:
            self.refuse(answer["worker"], conflict, number, group)
            return
        self.recorder.group(answer["records"], answer["machine"], answer["host"], answer["worker"])

    def refuse(self, address: str, reason: str, number: int, group: list[BenchCase]) -> None:
        print(f"rnnbench: retiring Dask worker {address}: {reason}", file=sys.stderr)
        self.retired.add(address)
        with contextlib.suppress(Exception):  # it may be gone already
            self.client.retire_workers(workers=[address], close_workers=True)
        self.tries[number] = self.tries.get(number, 0) + 1
        if self.tries[number] >= MAX_TRIES:
            self.lose(group, f"refused by {self.tries[number]} workers, the last: {reason}")
        else:
            self.submit(number, group)

    def lose(self, group: list[BenchCase], reason: str) -> None:
        self.recorder.group([lost(new_record(c), reason) for c in group], None)


def _someone_can_run(client, futures: dict, retired: set[str]) -> bool:
    """Whether a running worker this run has not retired can take the remaining groups, and
    not every one of them sits on a worker that will never run it (one retiring but stuck in
    closing_gracefully holds its tasks)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    able = {a: i for a, i in workers.items() if i.get("status") == "running" and a not in retired}
    groups = [group for _, group in futures.values()]
    if not able or (all(map(needs_gpu, groups)) and not _gpu_workers(able)):
        return False
    held = {
        key for address, keys in client.processing().items() if address not in able for key in keys
    }
    return not all(future.key in held for future in futures)
