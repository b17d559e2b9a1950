"""Runs a suite on this machine: each interleaved group's cases in their own worker processes,
timed round by round in turn (A B A B ...), each step of a case under its timeout, the group
under the machine lock; every record lands in the results file (atomically) as soon as its
group ends, so that an interrupted run can be resumed. harness.bench.cluster runs the same
groups on Dask workers and records them through the same Recorder."""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.bench import flops, results, stats, timing
from harness.bench.case import BenchCase
from harness.bench.machine_lock import machine_lock
from harness.bench.metadata import collect_environment
from harness.bench.suites import Suite
from harness.bench.worker import serve


class WorkerTimeout(Exception):
    pass


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def selfcheck() -> dict[str, float]:
    """The timer's resolution and the timing loop's own cost per call, against a 1 ms call."""
    overhead = timing.loop_overhead()
    return {
        "timer_resolution_s": timing.timer_resolution(),
        "loop_overhead_s": overhead,
        "loop_overhead_fraction_of_1ms": overhead / 1e-3,
    }


def open_document(suite: Suite, out: Path, resume: bool, overwrite: bool, client: dict):
    """The results document to fill: the --resume file (same suite) or a new one."""
    results.check_writable(out)
    if out.exists() and resume:
        doc = results.load_results(out)
        if doc["suite"]["name"] != suite.name:
            raise results.ResultsError(
                f"cannot resume {out}: it holds suite {doc['suite']['name']!r}, not {suite.name!r}"
            )
        return doc
    if out.exists() and not overwrite:
        raise results.ResultsError(
            f"{out} exists: pass --resume to finish it or --overwrite to replace it"
        )
    return results.new_document(suite, client, now())


def client_info(git: dict, machine: str | None = None, scheduler=None) -> dict[str, Any]:
    """Where a run is started from; git: collect_git() of this process."""
    from harness.bench.metadata import machine_label

    return {
        "machine": machine_label(machine),
        "host": platform.node(),
        "scheduler": scheduler,
        "git": git,
    }


def remaining_groups(suite: Suite, doc: dict[str, Any]) -> list[list[BenchCase]]:
    done = results.done_ids(doc)
    return [g for g in ([c for c in group if c.id not in done] for group in suite.groups()) if g]


class Recorder:
    """Enters each finished group's records into the document, in the suite's order whatever
    order the groups end in, and rewrites the file (atomically); counts cases for the
    progress callback and adds up the wall time."""

    def __init__(self, doc: dict, out: Path, suite: Suite, total: int, progress: Callable | None):
        self.doc, self.out, self.total, self.progress = doc, out, total, progress
        self.order = {case.id: number for number, case in enumerate(suite.cases)}
        self.finished = 0
        self.started, self.earlier_s = time.perf_counter(), doc.get("wall_s") or 0.0

    def group(self, records: list[dict], machine: dict | None, host=None, worker=None) -> None:
        """machine: {environment, selfcheck} of what timed the group, None when no machine
        did (its worker was lost): the records then name none."""
        label = None
        if machine is not None:  # its label was checked before it timed anything
            label = results.add_machine(
                self.doc, machine["environment"], machine["selfcheck"], host, worker
            )
        for record in records:
            record.update(machine=label, host=host if label else None, worker=worker)
            results.upsert(self.doc, record)
            self.finished += 1
            if self.progress:
                self.progress(record, self.finished, self.total)
        self.doc["cases"].sort(key=lambda r: self.order.get(r["id"], len(self.order)))
        self.save()

    def save(self, finished: bool = False) -> None:
        if finished:
            self.doc["finished"] = now()
        self.doc["wall_s"] = self.earlier_s + time.perf_counter() - self.started
        results.save_results(self.out, self.doc)


def lost(record: dict[str, Any], reason: str) -> dict[str, Any]:
    """A record whose measurement is not kept: status error with the reason, nothing timed."""
    return {
        **record,
        "status": "error",
        "reason": reason,
        "samples_s": [],
        "stats": None,
        "loops": None,
    }


def check_resume_here(doc: dict, out: Path, environment: dict, named: bool) -> None:
    """A local run may add to a file only under a label that names this environment; a label
    new to a file of other machines only when given (--machine or RNNBENCH_MACHINE): a
    hostname that changed (a new container) must not split one machine's run in two."""
    label = environment["machine"]
    conflict = results.label_conflict(doc["machines"], environment)
    if conflict:
        raise results.ResultsError(f"cannot resume {out}: {conflict}")
    if label not in doc["machines"] and doc["machines"] and not named:
        raise results.ResultsError(
            f"cannot resume {out}: it was measured on {', '.join(sorted(doc['machines']))}, "
            f"not on {label!r}: resume it there, or pass --machine {label} to add this "
            "machine's timings as another machine"
        )


def run_suite(
    suite: Suite,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    machine: str | None = None,
    progress: Callable | None = None,
) -> dict[str, Any]:
    """progress(record, done, total) after each case; returns the results document."""
    out = Path(out)
    environment = collect_environment(machine)
    client = client_info(environment["git"], machine)
    doc = open_document(suite, out, resume, overwrite, client)
    named = bool(machine or os.environ.get("RNNBENCH_MACHINE"))
    check_resume_here(doc, out, environment, named)
    here = {"environment": environment, "selfcheck": selfcheck()}
    todo = remaining_groups(suite, doc)
    recorder = Recorder(doc, out, suite, sum(len(g) for g in todo), progress)
    with tempfile.TemporaryDirectory(prefix="rnnbench-workers-") as logs:
        for group in todo:
            with machine_lock():
                records = measure_group(group, suite.timing, Path(logs))
            recorder.group(records, here, host=platform.node())
    recorder.save(finished=True)
    return doc


def measure_group(cases: list[BenchCase], settings: dict[str, float], logs: Path) -> list[dict]:
    """Start every case's worker at once (imports overlap; nothing is timed yet), calibrate them
    one at a time, then interleave their rounds with a pause before each, for the previous
    worker's spinning thread pool to fall asleep. Every record names this run of the group
    (group_run): only records of one run have rounds that pair."""
    ctx = multiprocessing.get_context("spawn")
    run, started = uuid.uuid4().hex[:16], time.perf_counter()
    records = {c.id: {**new_record(c), "group_run": run} for c in cases}
    workers: dict[str, tuple] = {}
    try:
        for case in cases:
            parent, child = ctx.Pipe()
            log = logs / f"{time.monotonic_ns()}-{case.target}.log"  # one per worker
            proc = ctx.Process(
                target=serve, args=(child, case.as_dict(), settings, str(log)), daemon=True
            )
            proc.start()
            child.close()
            workers[case.id] = (proc, parent, settings["timeout_s"], log)
        for step in ("built", "ready"):
            for case_id, worker in list(workers.items()):
                message = _ask(worker, None if step == "built" else "calibrate", records[case_id])
                if message is None or message.get("status") not in ("built", "ready"):
                    _stop(workers.pop(case_id))
        for _ in range(int(settings["rounds"])):
            for case_id, worker in list(workers.items()):
                time.sleep(settings["pause_s"])
                sample = _ask(worker, "round", records[case_id])
                if sample is None:
                    _stop(workers.pop(case_id))
                else:
                    records[case_id]["samples_s"].append(sample)
    finally:
        for worker in workers.values():
            _stop(worker)
    for case_id in workers:  # the ones that finished every round
        record = records[case_id]
        record["status"] = "ok"
        record["stats"] = stats.summarize(record["samples_s"])
    group_s = time.perf_counter() - started  # the machine's time on the group
    for record in records.values():
        record["group_s"] = group_s
    return list(records.values())


def new_record(case: BenchCase) -> dict[str, Any]:
    return {
        "id": case.id,
        "case": case.as_dict(),
        "status": "error",
        "reason": "",
        "impl_class": "",
        "notes": "",
        "weights_digest": "",
        "parity": [],
        "threads": {},
        "loops": None,
        "samples_s": [],
        "stats": None,
        "flops": flops.of_case(case),
        "bytes": flops.case_bytes(case.mode, case.size, case.dtype),
    }


def _ask(worker, request, record: dict[str, Any]):
    """Send `request` (None: wait for the build) and wait for the answer for at most the case's
    timeout_s: the build, the calibration and each round each get that long, so that waiting
    for the other members of a large group never counts against a case. A dict answer is
    merged into the record. None when the worker is done for."""
    proc, conn, timeout, log = worker
    deadline = time.monotonic() + timeout
    try:
        if request is not None:
            conn.send(request)
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise WorkerTimeout
        answer = conn.recv()
    except WorkerTimeout:
        record.update(
            status="timeout",
            reason=f"no answer to {request or 'build'} within the case's timeout_s",
        )
        return None
    except (EOFError, OSError):
        proc.join(timeout=5)
        record.update(
            status="error",
            reason=f"worker died (exit code {proc.exitcode}) during "
            f"{request or 'build'}: {_tail(log)}",
        )
        return None
    if isinstance(answer, dict):
        status = answer.pop("status")
        record.update(answer)
        if status in ("skipped", "failed", "error"):
            record["status"] = status
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
