"""One interleaved group timed on this machine: every case in a worker process of its own
(harness.bench.worker), built and calibrated one at a time, then timed round by round in turn
(A B A B ...), each step of a case under its timeout."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from harness import registry, stats, termination
from harness.bench import resources
from harness.bench.case import BenchCase
from harness.bench.worker import serve
from harness.json_values import JsonObject
from harness.model import flops
from harness.records.results import CaseRecord, Stats, Timing

# (seconds of the first pass over the group) -> rounds
Plan = Callable[[float], int]
# Worker processes are forked from one server process a run (multiprocessing's forkserver) that
# imported, once, what every worker needs and the backends whose import starts no thread a fork
# would lose (numpy's OpenBLAS pool is made anew after a fork; TensorFlow and ONNX Runtime start
# threads of their own, and are imported by their workers). A worker is still a fresh process:
# no framework has made a thread pool, an allocator arena or a compiled graph in it.
WORKER_MODULES = ("harness.bench.worker", "harness.bench.workload")
FORK_SAFE = ("backends.numpy_backend", "backends.torch_backend")


class WorkerTimeout(Exception):
    pass


def measure_group(
    cases: list[BenchCase], settings, logs: Path, plan: Plan | None = None
) -> list[CaseRecord]:
    """Start every case's worker at once (imports overlap; nothing is timed yet), calibrate them
    one at a time, then interleave their rounds with a pause before each, for the previous
    worker's spinning thread pool to fall asleep. Every record names this run of the group
    (group_run): only records of one run have rounds that pair. A case whose arrays would not
    fit in the memory available is refused before any worker starts (resources.refusal).

    plan(seconds of the first pass over the group) gives the rounds every case of the group
    gets (the budget's share, harness.bench.plan); without it, settings.rounds. A round the
    worker found stopped or descheduled is timed again and counted in the record's
    `retimed`."""
    settings = settings if isinstance(settings, Timing) else Timing.model_validate(settings)
    ctx = worker_context(cases)
    run, started = uuid.uuid4().hex[:16], time.perf_counter()
    records = {c.id: new_record(c, group_run=run) for c in cases}
    workers: dict[str, tuple] = {}
    try:
        for case in cases:
            refused = resources.refusal(case)
            if refused:
                records[case.id].status, records[case.id].reason = "skipped", refused
                continue
            parent, child = ctx.Pipe()
            log = logs / f"{time.monotonic_ns()}-{case.backend}.log"  # one per worker
            proc = ctx.Process(
                target=serve,
                args=(child, case.as_dict(), settings.model_dump(), str(log)),
                daemon=True,
            )
            proc.start()
            child.close()
            workers[case.id] = (proc, parent, settings.timeout_s, log)
        for step in ("built", "ready"):
            for case_id, worker in list(workers.items()):
                message = _ask(worker, None if step == "built" else "calibrate", records[case_id])
                if message is None or message.get("status") not in ("built", "ready"):
                    _stop(workers.pop(case_id))
        rounds, done, first = settings.rounds, 0, time.perf_counter()
        while done < rounds and workers:
            for case_id, worker in list(workers.items()):
                termination.sleep(settings.pause_s)
                if not _round(worker, records[case_id]):
                    _stop(workers.pop(case_id))
            done += 1
            if done == 1 and plan is not None:
                rounds = plan(time.perf_counter() - first)
        for case_id, worker in list(workers.items()):  # what a mode records after its rounds
            if _ask(worker, "finish", records[case_id]) is None:
                _stop(workers.pop(case_id))
    except BaseException:  # SIGTERM, Ctrl-C: no worker's answer is waited for (a build's)
        for proc, *_ in workers.values():
            proc.kill()
        raise
    finally:
        for worker in workers.values():
            _stop(worker)
    for case_id in workers:  # the ones that finished every round
        record = records[case_id]
        record.status, record.stats = "ok", Stats.model_validate(stats.summarize(record.samples_s))
    group_s = time.perf_counter() - started  # the machine's time on the group
    # what the workers said, typed and checked now (an unknown or ill-typed field fails here)
    return [
        CaseRecord.model_validate({**r.model_dump(), "group_s": group_s}) for r in records.values()
    ]


def worker_context(cases: list[BenchCase]):
    """The multiprocessing context workers start in: forked from the server, which imports
    what `cases` need when it starts (the first call of a run decides: harness.bench.engine
    calls it with every case of the suite); spawn where there is no forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    needed = {registry.check_name(c.backend).import_path.split(":")[0] for c in cases}
    ctx.set_forkserver_preload([*WORKER_MODULES, *(m for m in FORK_SAFE if m in needed)])
    return ctx


def _round(worker, record: CaseRecord) -> bool:
    """One round of the case: its sample added to the record, the tries retimed counted;
    False when the worker is done for (the record says why)."""
    answer = _ask(worker, "round", record)
    if answer is None:
        return False
    record.retimed += answer["retimed"]
    if answer["sample_s"] is None:
        record.status = "error"
        record.reason = (
            f"round {len(record.samples_s) + 1}: {answer['retimed']} tries in a row were "
            "stopped or descheduled (wall time over what their CPU time allows): the machine "
            "is too busy to time it"
        )
        return False
    record.samples_s.append(answer["sample_s"])
    return True


def new_record(case: BenchCase, **fields) -> CaseRecord:
    """A case's record before anything is known of it: an error until its worker answers."""
    start = {
        "id": case.id,
        "case": case.as_dict(),
        "status": "error",
        "flops": flops.of_case(case),
        "bytes": flops.case_bytes(case.mode, case.size, case.dtype),
    }
    return CaseRecord(**{**start, **fields})


def lost(record: CaseRecord, reason: str) -> CaseRecord:
    """A record whose measurement is not kept: status error with the reason, nothing timed."""
    update: JsonObject = dict(status="error", reason=reason, samples_s=[], stats=None, loops=None)
    return record.model_copy(update=update)


@termination.stop_point  # it waits on a worker: where a SIGTERM stops the run
def _ask(worker, request, record: CaseRecord):
    """Send `request` (None: wait for the build) and wait for the answer for at most the case's
    timeout_s: the build, the calibration and each round each get that long, so that waiting
    for the other members of a large group never counts against a case. A status answer's
    fields are set on the record (a field the record does not have is an error); a round's is
    returned as it is. None when the worker is done for."""
    proc, conn, timeout, log = worker
    deadline = time.monotonic() + timeout
    try:
        if request is not None:
            conn.send(request)
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise WorkerTimeout
        answer = conn.recv()
    except WorkerTimeout:
        record.status = "timeout"
        record.reason = f"no answer to {request or 'build'} within the case's timeout_s"
        return None
    except (EOFError, OSError):
        proc.join(timeout=5)
        record.status = "error"
        record.reason = (
            f"worker died (exit code {proc.exitcode}) during {request or 'build'}: {_tail(log)}"
        )
        return None
    if isinstance(answer, dict) and "status" in answer:
        status = answer.pop("status")
        for name, value in answer.items():
            setattr(record, name, value)
        if status in ("skipped", "failed", "error"):
            record.status = status
            return None
        answer["status"] = status
    return answer


def _stop(worker) -> None:
    proc, conn, _, _ = worker
    with contextlib.suppress(OSError, ValueError):
        conn.send("stop")
    proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)
    conn.close()


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
