"""Runs a suite on this machine: each interleaved group's cases in their own worker processes,
timed round by round in turn (A B A B ...), each step of a case under its timeout, the group
under the machine lock; every record lands in the results file (atomically) as soon as its
group ends, so that an interrupted run can be resumed. harness.cluster.runner runs the same
groups on Dask workers and records them through the same Recorder.

The file has one writer (harness.bench.writer_lock). A --resume holds the file to the suite it
was started with (its identity: timing and cases). The suite's budget_s is said up front
against an estimate and enforced: once spent, no new group starts and the rest is recorded as
not timed, for --resume to finish. A write that fails leaves the old file whole and writes
what was measured to a recovery file beside it, which --resume takes."""

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

from harness import stats, termination
from harness.atomic import write_text_atomic
from harness.bench import recovery, resources, timing
from harness.bench.case import BenchCase
from harness.bench.scratch import worker_logs
from harness.bench.suites import Suite
from harness.bench.worker import serve
from harness.json_values import JsonObject
from harness.machine.environment import collect_environment
from harness.machine.lock import machine_lock
from harness.model import flops
from harness.records import store as results
from harness.records.results import CaseRecord, Stats, Timing

WORKER_START_S = 3.0  # importing a framework and building a case: the estimate's allowance


class WorkerTimeout(Exception):
    pass


class WriteFailed(RuntimeError):
    """The results file could not be written; the message says where what was measured is."""


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


def recovery_file(out: Path) -> Path:
    return out.with_name(out.name + ".recovery")


def open_document(suite: Suite, out: Path, resume: bool, overwrite: bool, client: dict):
    """The results document to fill: the --resume file (the same suite: its identity is
    checked), with the records of a recovery file beside it added (its last write failed),
    or a new one."""
    results.check_writable(out)
    if resume and not out.exists() and not recovery_file(out).exists():
        raise results.ResultsError(
            f"cannot resume {out}: no such file, so nothing to resume: drop --resume to start it"
        )
    if resume:
        if out.exists():
            doc = results.load_results(out)
            check_same_suite(doc, suite, out)
        else:  # the first write failed: what was measured is in the recovery file only
            doc = results.new_document(suite, client, now())
        if recovery_file(out).exists():
            recovery.merge(doc, recovery_file(out))
        check_records_in_suite(doc, suite, out)
        return doc
    if out.exists() and not overwrite:
        raise results.ResultsError(
            f"{out} exists: pass --resume to finish it or --overwrite to replace it"
        )
    return results.new_document(suite, client, now())


def check_records_in_suite(doc, suite: Suite, path: Path) -> None:
    """Every record a resumed file keeps is a case of the suite (each record's fields make
    its id: the records validate that): a record of another case would be counted as done
    and never timed."""
    cases = {c.id for c in suite.cases}
    for record in doc.cases:
        if record.id not in cases:
            raise results.ResultsError(
                f"cannot resume {path}: it holds case {record.id!r}, which suite "
                f"{suite.name!r} does not have"
            )


def check_same_suite(doc, suite: Suite, path: Path) -> None:
    """Refuse to resume a file with another suite than the one it was started with, naming
    what changed. A file from before version 3 has no identity: its name, timing and every
    case it holds must match."""
    recorded = doc.suite
    if recorded.name != suite.name:
        raise results.ResultsError(
            f"cannot resume {path}: it holds suite {recorded.name!r}, not {suite.name!r}"
        )
    changes = []
    if recorded.timing != suite.timing:
        diff = [
            f"{k} {getattr(recorded.timing, k)!r} -> {getattr(suite.timing, k)!r}"
            for k in Timing.model_fields
            if getattr(recorded.timing, k) != getattr(suite.timing, k)
        ]
        changes.append("timing changed (" + ", ".join(diff) + ")")
    now_ids = [c.id for c in suite.cases]
    if recorded.identity is not None:
        before = recorded.identity.case_ids
        added = [i for i in now_ids if i not in set(before)]
        removed = [i for i in before if i not in set(now_ids)]
    else:
        added, removed = [], [r.id for r in doc.cases if r.id not in set(now_ids)]
    if added:
        changes.append(f"{len(added)} case(s) added ({added[0]}, ...)")
    if removed:
        changes.append(f"{len(removed)} case(s) removed ({removed[0]}, ...)")
    same = recorded.identity is None or recorded.identity.sha256 == suite.identity().sha256
    if not changes and not same:
        changes.append(
            "its cases' fields or its timing differ from those its recorded identity was made "
            "from (the same ids; an edited file, or other case settings)"
        )
    if changes:
        raise results.ResultsError(
            f"cannot resume {path}: suite {suite.name!r} is not the one it was started with: "
            f"{'; '.join(changes)}; start a new --out, or resume with the recorded suite "
            "(--resume without --suite)"
        )


def client_info(git: dict, machine: str | None = None, scheduler=None) -> JsonObject:
    """Where a run is started from; git: collect_git() of this process."""
    from harness.machine.environment import machine_label

    return {
        "machine": machine_label(machine),
        "host": platform.node(),
        "scheduler": scheduler,
        "git": git,
    }


def remaining_groups(suite: Suite, doc) -> list[list[BenchCase]]:
    done = results.done_ids(doc)
    return [g for g in ([c for c in group if c.id not in done] for group in suite.groups()) if g]


def estimate_s(groups: list[list[BenchCase]], settings: Timing) -> float:
    """A rough time for the groups: each group's workers start together, then every case
    calibrates and runs its rounds with a pause before each."""
    per_case = settings.warmup_s + 2 * settings.min_round_s
    per_case += settings.rounds * (settings.min_round_s + settings.pause_s)
    return sum(WORKER_START_S + len(g) * per_case for g in groups)


class Recorder:
    """Enters each finished group's records into the document, in the suite's order whatever
    order the groups end in, and rewrites the file (atomically); counts cases for the
    progress callback and adds up the wall time. What a failed write could not keep (the
    records entered since the last write that succeeded) goes to a recovery file."""

    def __init__(self, doc, out: Path, suite: Suite, total: int, progress: Callable | None):
        self.doc, self.out, self.total, self.progress = doc, out, total, progress
        self.order = {case.id: number for number, case in enumerate(suite.cases)}
        self.finished = 0
        self.started, self.earlier_s = time.perf_counter(), doc.wall_s or 0.0
        self.unsaved: list[CaseRecord] = []

    @property
    def spent_s(self) -> float:
        """Seconds measured in this run (an earlier run's, resumed, are not counted)."""
        return time.perf_counter() - self.started

    def group(self, records, machine: dict | None, host=None, worker=None) -> None:
        """machine: {environment, selfcheck} of what timed the group, None when no machine
        did (its worker was lost): the records then name none."""
        label = None
        if machine is not None:  # its label was checked before it timed anything
            label = results.add_machine(
                self.doc, machine["environment"], machine["selfcheck"], host, worker
            )
        for record in records:
            record = record if isinstance(record, CaseRecord) else CaseRecord.model_validate(record)
            record.machine, record.worker = label, worker
            record.host = host if label else None
            results.upsert(self.doc, record)
            self.unsaved.append(record)
            self.finished += 1
            if self.progress:
                self.progress(record, self.finished, self.total)
        self.doc.cases.sort(key=lambda r: self.order.get(r.id, len(self.order)))
        self.save()

    def not_timed(self, cases: list[BenchCase], reason: str) -> None:
        for case in cases:
            results.upsert(self.doc, new_record(case, status="not_timed", reason=reason))
        self.doc.cases.sort(key=lambda r: self.order.get(r.id, len(self.order)))
        self.save()

    def save(self, finished: bool = False) -> None:
        if finished:
            self.doc.finished = now()
        self.doc.wall_s = self.earlier_s + self.spent_s
        try:
            results.save_results(self.out, self.doc)
        except OSError as exc:
            raise WriteFailed(self._recover(exc)) from None
        self.unsaved = []
        with contextlib.suppress(OSError):
            recovery_file(self.out).unlink()

    def _recover(self, exc: OSError) -> str:
        """Write the records the file lacks (and their machines) to a recovery file, beside
        --out or else in the temporary folder, and say where: the old file is whole, and
        --resume adds the recovery file's records to it."""
        why = exc.strerror or str(exc)
        if not self.unsaved:
            return f"cannot write {self.out} ({why}): nothing was measured yet"
        text = recovery.dumps(self.doc, self.unsaved, self.out)
        beside = recovery_file(self.out)
        for path in (beside, Path(tempfile.gettempdir()) / beside.name):
            try:
                write_text_atomic(path, text)
            except OSError:
                continue
            moved = "" if path == beside else f" (move it to {beside} for --resume)"
            return (
                f"cannot write {self.out} ({why}): it holds its last write whole; the "
                f"{len(self.unsaved)} records measured since are in {path}{moved}: --resume "
                "adds them and finishes the run"
            )
        return (
            f"cannot write {self.out} ({why}), nor a recovery file beside it or in "
            f"{tempfile.gettempdir()}: its last write is whole; the {len(self.unsaved)} "
            "records measured since are lost"
        )


def lost(record: CaseRecord, reason: str) -> CaseRecord:
    """A record whose measurement is not kept: status error with the reason, nothing timed."""
    update: JsonObject = dict(status="error", reason=reason, samples_s=[], stats=None, loops=None)
    return record.model_copy(update=update)


def check_resume_here(doc, out: Path, environment: dict, named: bool) -> None:
    """A local run may add to a file only under a label that names this environment; a label
    new to a file of other machines only when given (--machine or RNNBENCH_MACHINE): a
    hostname that changed (a new container) must not split one machine's run in two."""
    label = environment["machine"]
    conflict = results.label_conflict(doc.machines, environment)
    if conflict:
        raise results.ResultsError(f"cannot resume {out}: {conflict}")
    if label not in doc.machines and doc.machines and not named:
        raise results.ResultsError(
            f"cannot resume {out}: it was measured on {', '.join(sorted(doc.machines))}, "
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
    notice: Callable[[str], None] | None = None,
):
    """progress(record, done, total) after each case; notice(text) for what the user should
    know (the budget); returns the results document."""
    from harness.bench.writer_lock import results_writer
    from harness.machine.lock import check_lock

    out = Path(out)
    say = notice or (lambda _: None)
    results.check_writable(out)  # before anything is written, locked or measured
    check_lock()
    with results_writer(out):
        environment = collect_environment(machine)
        client = client_info(environment["git"], machine)
        doc = open_document(suite, out, resume, overwrite, client)
        named = bool(machine or os.environ.get("RNNBENCH_MACHINE"))
        check_resume_here(doc, out, environment, named)
        here = {"environment": environment, "selfcheck": selfcheck()}
        todo = remaining_groups(suite, doc)
        recorder = Recorder(doc, out, suite, sum(len(g) for g in todo), progress)
        recorder.save()  # a file that cannot be written is found before anything is measured
        budget = suite.budget_s
        estimate = estimate_s(todo, suite.timing)
        if budget and estimate > budget:
            say(
                f"suite {suite.name!r}: an estimated {estimate:.0f} s to measure exceeds its "
                f"budget_s of {budget:.0f} s: what the budget leaves is recorded as not timed "
                "(--resume finishes it, with a budget of its own)"
            )
        with worker_logs() as logs:
            for number, group in enumerate(todo):
                if budget and recorder.spent_s >= budget:
                    rest = [c for g in todo[number:] for c in g]
                    reason = (
                        f"budget_s {budget:.0f} s spent after {recorder.spent_s:.0f} s: not "
                        "started; --resume times it"
                    )
                    recorder.not_timed(rest, reason)
                    say(f"{reason} ({len(rest)} cases)")
                    break
                with machine_lock():
                    records = measure_group(group, suite.timing, Path(logs))
                recorder.group(records, here, host=platform.node())
        recorder.save(finished=True)
    return doc


def measure_group(cases: list[BenchCase], settings, logs: Path) -> list[CaseRecord]:
    """Start every case's worker at once (imports overlap; nothing is timed yet), calibrate them
    one at a time, then interleave their rounds with a pause before each, for the previous
    worker's spinning thread pool to fall asleep. Every record names this run of the group
    (group_run): only records of one run have rounds that pair. A case whose arrays would not
    fit in the memory available is refused before any worker starts (resources.refusal)."""
    settings = settings if isinstance(settings, Timing) else Timing.model_validate(settings)
    ctx = multiprocessing.get_context("spawn")
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
        for _ in range(settings.rounds):
            for case_id, worker in list(workers.items()):
                termination.sleep(settings.pause_s)
                sample = _ask(worker, "round", records[case_id])
                if sample is None:
                    _stop(workers.pop(case_id))
                else:
                    records[case_id].samples_s.append(sample)
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


@termination.stop_point  # it waits on a worker: where a SIGTERM stops the run
def _ask(worker, request, record: CaseRecord):
    """Send `request` (None: wait for the build) and wait for the answer for at most the case's
    timeout_s: the build, the calibration and each round each get that long, so that waiting
    for the other members of a large group never counts against a case. A dict answer's
    fields are set on the record (a field the record does not have is an error). None when the
    worker is done for."""
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
    if isinstance(answer, dict):
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
