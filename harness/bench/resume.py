"""The results document a run fills: a new one, or the --resume file held to the suite it was
started with (its identity: timing and cases) and to the machine that timed it, with the
records of a recovery file beside it added (its last write failed)."""

from __future__ import annotations

import platform
from pathlib import Path

from harness.bench import recovery
from harness.bench.case import BenchCase
from harness.bench.recorder import now, recovery_file
from harness.bench.suites import Suite
from harness.json_values import JsonObject
from harness.records import store as results
from harness.records.results import Timing


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
