"""The results store: one JSON document per benchmark run, written atomically, versioned.

Schema version 2 (results/README.md documents every field): schema_version, kind
"rnnbench-bench", suite {name, path, budget_s, timing}, machines {label: {environment
(harness.bench.metadata), selfcheck, hosts, workers}}: every machine that timed a case,
client (where the run was driven from), started/finished (UTC ISO 8601), wall_s, and cases:
one record per BenchCase id naming the machine that timed it, with its status (ok | failed |
skipped | error | timeout), reason, raw samples in seconds per call, statistics derived from
them, FLOPs and the parity checks. Version 1 files (one machine: a top-level environment and
selfcheck) are read as version 2 (`upgrade`)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.atomic import write_text_atomic

SCHEMA_VERSION = 2
KIND = "rnnbench-bench"
STATUSES = ("ok", "failed", "skipped", "error", "timeout")
DONE = ("ok", "failed", "skipped")  # what a resumed run does not measure again
REQUIRED = {1: ("suite", "environment", "cases"), 2: ("suite", "machines", "cases")}


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
    if version not in REQUIRED:
        raise ResultsError(
            f"results file {path} has schema_version {version!r}: this rnnbench "
            f"reads 1..{SCHEMA_VERSION}; upgrade rnnbench"
        )
    missing = [k for k in REQUIRED[version] if k not in doc]
    if missing:
        raise ResultsError(f"results file {path} is corrupt: missing {', '.join(missing)}")
    if version == 1 and not isinstance(doc["environment"], dict):
        raise ResultsError(f"results file {path} is corrupt: environment is not an object")
    doc = upgrade(doc)
    if not isinstance(doc["machines"], dict) or not all(
        isinstance(m, dict) and isinstance(m.get("environment"), dict)
        for m in doc["machines"].values()
    ):
        raise ResultsError(
            f"results file {path} is corrupt: machines must map each label to "
            "{environment, selfcheck, hosts, workers}"
        )
    for number, record in enumerate(doc["cases"]):
        problem = _record_problem(record) or _machine_problem(record, doc["machines"])
        if problem:
            raise ResultsError(f"results file {path} is corrupt: case {number}: {problem}")
    return doc


def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """A version 1 document (one machine) as version 2, in a new dict; others as they are."""
    if doc.get("schema_version") != 1:
        return doc
    environment = doc["environment"]
    label = environment.get("machine") or "?"
    cases = doc["cases"] if isinstance(doc["cases"], list) else []
    upgraded = {k: v for k, v in doc.items() if k not in ("environment", "selfcheck")}
    upgraded.update(
        schema_version=SCHEMA_VERSION,
        machines={label: machine_entry(environment, doc.get("selfcheck") or {})},
        client=None,
        cases=[{**r, "machine": label} if isinstance(r, dict) else r for r in cases],
    )
    return upgraded


def machine_entry(environment, selfcheck, host=None, worker=None) -> dict[str, Any]:
    return {
        "environment": environment,
        "selfcheck": selfcheck,
        "hosts": [host] if host else [],
        "workers": [worker] if worker else [],
    }


def add_machine(doc, environment, selfcheck, host=None, worker=None) -> str:
    """Enter the machine that timed a group (label: environment["machine"]) and return its
    label. A label already in the file must name the same environment (the COMPARABLE keys):
    else a ResultsError, since its timings would be pooled with another machine's."""
    label = environment["machine"]
    known = doc["machines"].get(label)
    if known is None:
        doc["machines"][label] = machine_entry(environment, selfcheck, host, worker)
        return label
    conflict = label_conflict(doc["machines"], environment)
    if conflict:
        raise ResultsError(conflict)
    for key, value in (("hosts", host), ("workers", worker)):
        if value and value not in known.setdefault(key, []):
            known[key].append(value)
    return label


def label_conflict(machines: dict[str, Any], environment: dict[str, Any]) -> str | None:
    """Why `environment` may not time under its label, given the machines already known (the
    label names another environment); None when it may."""
    from harness.bench.metadata import differences

    label = environment["machine"]
    known = machines.get(label)
    changed = [] if known is None else differences(known["environment"], environment)
    if not changed:
        return None
    return (
        f"machine label {label!r} already names another environment in this file "
        f"({'; '.join(changed)}): give each kind of machine its own label "
        "(--machine, or RNNBENCH_MACHINE on a Dask worker)"
    )


def machine_views(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One single-machine document per machine of a (checked) document: its environment and
    selfcheck at the top level, only its cases, as the analysis reads them. Records that no
    machine kept (a group lost to its worker, or refused) are the first view's `lost`."""
    doc = upgrade(doc)
    head = {k: v for k, v in doc.items() if k not in ("machines", "cases")}
    lost = [r for r in doc["cases"] if r.get("machine") is None]
    return [
        {
            **head,
            "environment": entry["environment"],
            "selfcheck": entry.get("selfcheck") or {},
            "hosts": entry.get("hosts", []),
            "cases": [r for r in doc["cases"] if r.get("machine") == label],
            "lost": lost if number == 0 else [],
        }
        for number, (label, entry) in enumerate(doc["machines"].items())
    ]


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


def _machine_problem(record: dict[str, Any], machines: dict[str, Any]) -> str | None:
    label = record.get("machine")
    if label is None and record["status"] in ("error", "timeout"):
        return None  # a group whose worker was lost names no machine
    if label not in machines:
        return f"{record['id']}: machine {label!r} is not among the file's machines"
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


def new_document(suite, client: dict[str, Any], started: str) -> dict[str, Any]:
    """client: where the run is driven from: {machine, host, scheduler (a Dask address or
    None), git}; the machines fill in as they time groups."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "suite": {
            "name": suite.name,
            "path": suite.path,
            "budget_s": suite.budget_s,
            "timing": suite.timing,
        },
        "machines": {},
        "client": client,
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
