"""Runs a suite: each interleaved group's cases in their own worker processes, timed round by
round in turn (A B A B ...), each step of a case under its timeout; every record lands in the
results file (atomically) as soon as its group ends, so that an interrupted run can be resumed."""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.bench import flops, results, stats, timing
from harness.bench.case import BenchCase
from harness.bench.metadata import collect_environment, differences
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


def open_document(suite: Suite, out: Path, resume: bool, overwrite: bool, machine=None):
    results.check_writable(out)
    environment = collect_environment(machine)
    if out.exists() and resume:
        doc = results.load_results(out)
        changed = differences(doc["environment"], environment)
        if changed:
            raise results.ResultsError(
                f"cannot resume {out}: it was measured in another "
                f"environment ({'; '.join(changed)})"
            )
        if doc["suite"]["name"] != suite.name:
            raise results.ResultsError(
                f"cannot resume {out}: it holds suite {doc['suite']['name']!r}, not {suite.name!r}"
            )
        return doc
    if out.exists() and not overwrite:
        raise results.ResultsError(
            f"{out} exists: pass --resume to finish it or --overwrite to replace it"
        )
    return results.new_document(suite, environment, now())


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
    doc = open_document(suite, out, resume, overwrite, machine)
    doc["selfcheck"] = selfcheck()
    started, earlier_s = time.perf_counter(), doc.get("wall_s") or 0.0  # a resumed run adds up
    done = results.done_ids(doc)
    todo = [[c for c in group if c.id not in done] for group in suite.groups()]
    total, finished = sum(len(g) for g in todo), 0
    with tempfile.TemporaryDirectory(prefix="rnnbench-workers-") as logs:
        for group in filter(None, todo):
            for record in measure_group(group, suite.timing, Path(logs)):
                results.upsert(doc, record)
                finished += 1
                if progress:
                    progress(record, finished, total)
            doc["wall_s"] = earlier_s + time.perf_counter() - started
            results.save_results(out, doc)
    doc["finished"] = now()
    doc["wall_s"] = earlier_s + time.perf_counter() - started
    results.save_results(out, doc)
    return doc


def measure_group(cases: list[BenchCase], settings: dict[str, float], logs: Path) -> list[dict]:
    """Start every case's worker at once (imports overlap; nothing is timed yet), calibrate them
    one at a time, then interleave their rounds with a pause before each, for the previous
    worker's spinning thread pool to fall asleep."""
    ctx = multiprocessing.get_context("spawn")
    records = {c.id: _record(c) for c in cases}
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
    return list(records.values())


def _record(case: BenchCase) -> dict[str, Any]:
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
