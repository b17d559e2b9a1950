"""The results store: one JSON document per benchmark run, written atomically, versioned.

Schema (results/README.md documents every field): schema_version, kind "rnnbench-bench",
suite {name, path, budget_s, timing}, environment (harness.bench.metadata), selfcheck (timer
resolution, loop overhead), started/finished (UTC ISO 8601), wall_s, and cases: one record per
BenchCase id with its status (ok | failed | skipped | error | timeout), reason, raw samples in
seconds per call, statistics derived from them, FLOPs and the parity checks."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.atomic import write_text_atomic

SCHEMA_VERSION = 1
KIND = "rnnbench-bench"
STATUSES = ("ok", "failed", "skipped", "error", "timeout")
DONE = ("ok", "failed", "skipped")  # what a resumed run does not measure again
REQUIRED = ("schema_version", "kind", "suite", "environment", "cases")


class ResultsError(ValueError):
    """A results file that cannot be used; the message names the file and what is wrong."""


def read_json(path: str | Path) -> Any:
    """The parsed file; a ResultsError naming it when it cannot be read or is not JSON."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"results file {path} is corrupt: not JSON ({exc})") from None


def load_results(path: str | Path) -> dict[str, Any]:
    return check_document(read_json(path), path)


def check_document(doc: Any, path: str | Path) -> dict[str, Any]:
    """doc itself if it is a results document this rnnbench can trust, else a ResultsError."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ResultsError(f"{path} is not an rnnbench results file (kind {KIND!r} missing)")
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(
            f"results file {path} has schema_version {version!r}: this rnnbench "
            f"reads 1..{SCHEMA_VERSION}; upgrade rnnbench"
        )
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise ResultsError(f"results file {path} is corrupt: missing {', '.join(missing)}")
    for number, record in enumerate(doc["cases"]):
        problem = _record_problem(record)
        if problem:
            raise ResultsError(f"results file {path} is corrupt: case {number}: {problem}")
    return doc


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict) or "id" not in record or "case" not in record:
        return "not a case record (needs id and case)"
    if record.get("status") not in STATUSES:
        return f"status {record.get('status')!r}: allowed {', '.join(STATUSES)}"
    if record["status"] == "ok":
        samples = record.get("samples_s")
        if not isinstance(samples, list) or not samples:
            return f"{record['id']}: status ok without samples_s"
        if not all(isinstance(s, int | float) and math.isfinite(s) and s > 0 for s in samples):
            return f"{record['id']}: samples_s must be positive finite seconds"
    return None


def check_writable(path: str | Path) -> None:
    """Refuse, before anything is measured, a results path this process cannot write: its
    folder is made if missing, and a scratch file is created there and removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".check", dir=path.parent)
        os.close(fd)
        os.unlink(scratch)
    except OSError as exc:
        raise ResultsError(f"cannot write results file {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ResultsError(f"cannot write results file {path}: it is a folder")


def save_results(path: str | Path, doc: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")


def new_document(suite, environment: dict[str, Any], started: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "suite": {
            "name": suite.name,
            "path": suite.path,
            "budget_s": suite.budget_s,
            "timing": suite.timing,
        },
        "environment": environment,
        "selfcheck": {},
        "started": started,
        "finished": None,
        "wall_s": None,
        "cases": [],
    }


def done_ids(doc: dict[str, Any]) -> set[str]:
    return {r["id"] for r in doc["cases"] if r["status"] in DONE}


def upsert(doc: dict[str, Any], record: dict[str, Any]) -> None:
    """Replace the record with the same id (an error being retried), or append."""
    for number, existing in enumerate(doc["cases"]):
        if existing["id"] == record["id"]:
            doc["cases"][number] = record
            return
    doc["cases"].append(record)
