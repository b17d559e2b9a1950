"""Enters each finished group's records into the results document and rewrites the file
atomically; a write that fails leaves the old file whole and writes what was measured to a
recovery file beside it, which --resume takes."""

from __future__ import annotations

import contextlib
import datetime
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.bench import recovery
from harness.bench.case import BenchCase
from harness.bench.group import new_record
from harness.bench.suites import Suite
from harness.records import store as results
from harness.records.results import CaseRecord


class WriteFailed(RuntimeError):
    """The results file could not be written; the message says where what was measured is."""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def recovery_file(out: Path) -> Path:
    return out.with_name(out.name + ".recovery")


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
        self.earlier_waited_s = doc.waited_s or 0.0
        self.unsaved: list[CaseRecord] = []
        self.waited_s = 0.0  # for the machine lock (harness.machine.lock)

    @property
    def spent_s(self) -> float:
        """Seconds of this run (an earlier run's, resumed, are not counted)."""
        return time.perf_counter() - self.started

    @property
    def measured_s(self) -> float:
        """Seconds of this run but those spent waiting for another benchmark to leave the
        machine (what a budget counts)."""
        return self.spent_s - self.waited_s

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
        self.doc.waited_s = self.earlier_waited_s + self.waited_s
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
