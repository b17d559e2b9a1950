"""The results store: one JSON document per benchmark run, written atomically, versioned, read
and written as the typed records of harness/records/results.py (schema version 6; versions 1
to 5 are read and upgraded). Every violation is a ResultsError of one line naming the file,
the field's path and what is allowed.

What a reader uses is derived from the raw samples: a stored `stats` block must agree with them
to rounding, or the file is refused naming the case."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.atomic import write_text_atomic
from harness.json_values import JsonObject
from harness.records import compact_json
from harness.records.errors import one_line
from harness.records.results import (
    DONE,
    KIND,
    SCHEMA_VERSION,
    STATUSES,
    WRITER,
    CaseRecord,
    Client,
    Environment,
    Machine,
    ResultsDocument,
    SuiteInfo,
)

__all__ = [
    "DONE",
    "KIND",
    "SCHEMA_VERSION",
    "STATUSES",
    "CaseRecord",
    "ResultsDocument",
    "ResultsError",
]
READS = (1, 2, 3, 4, 5, 6)
REQUIRED = {1: ("suite", "environment", "cases"), 2: ("suite", "machines", "cases")}


class ResultsError(ValueError):
    """A results file that cannot be used; the message names the file and what is wrong."""


def read_json(path: str | Path, allow_infinity: bool = False) -> Any:
    """The parsed file; a ResultsError naming it when it cannot be read or is not JSON.
    allow_infinity: Infinity read as a float (a parity record's share of tolerance of a check
    that failed before its values were compared); NaN is refused all the same."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"results file {path} is corrupt: not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_infinity if allow_infinity else refuse_constant)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"results file {path} is corrupt: not JSON ({exc})") from None
    except RecursionError:
        raise ResultsError(f"results file {path} is corrupt: nested too deeply") from None
    except ValueError as exc:
        raise ResultsError(f"results file {path} is corrupt: {exc}") from None


def refuse_constant(name: str):
    raise ValueError(f"it holds {name}, which is not a number: every value must be finite")


def _infinity(name: str) -> float:
    if name == "NaN":
        refuse_constant(name)
    return float(name.replace("Infinity", "inf"))


def load_results(path: str | Path) -> ResultsDocument:
    return check_document(read_json(path), path)


def check_document(doc: Any, path: str | Path) -> ResultsDocument:
    """The typed document if `doc` is a results document this rnnbench can trust, else a
    ResultsError naming what is wrong."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ResultsError(f"{path} is not an rnnbench results file (kind {KIND!r} missing)")
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ResultsError(
            f"results file {path} is corrupt: schema_version = {version!r}: allowed an integer "
            f"({', '.join(map(str, READS))})"
        )
    if version not in READS:
        raise ResultsError(
            f"results file {path} has schema_version {version!r}: this rnnbench "
            f"reads {', '.join(map(str, READS))}; upgrade rnnbench"
        )
    if not isinstance(doc.get("cases", []), list):
        raise ResultsError(
            f"results file {path} is corrupt: cases = {str(doc['cases'])[:40]}: allowed a list"
        )
    missing = [k for k in REQUIRED.get(version, ()) if k not in doc]
    if missing:
        raise ResultsError(f"results file {path} is corrupt: missing {', '.join(missing)}")
    try:
        # strict: a number written as a string, or true for 1, is refused, not converted
        typed = ResultsDocument.model_validate(upgrade(doc), strict=True)
    except ValidationError as exc:
        raise ResultsError(_unknown_or_corrupt(exc, doc, path)) from None
    except (TypeError, AttributeError) as exc:
        raise ResultsError(f"results file {path} is corrupt: {exc}") from None
    return typed


def _unknown_or_corrupt(exc: ValidationError, doc: JsonObject, path) -> str:
    """A field this version does not know names the version that wrote it (a newer rnnbench);
    anything else is corruption."""
    if exc.errors()[0]["type"] != "extra_forbidden":
        return one_line(exc, f"results file {path} is corrupt")
    writer = doc.get("written_by") if isinstance(doc.get("written_by"), str) else None
    known = one_line(exc, f"results file {path}").replace(
        ": not a field this file may hold",
        f": not a field {WRITER} (schema {SCHEMA_VERSION}) knows",
    )
    if writer and writer != WRITER:
        return f"{known}: the file was written by {writer}; read it with that rnnbench or newer"
    if writer:  # this very version's name: a changed copy of it, or a file edited by hand
        return (
            f"{known}, though the file says {writer} wrote it: it was edited, or written by a "
            "changed copy of this version (a record that gains a field needs a schema_version "
            "bump in harness/records/results.py)"
        )
    return f"{known}: the file was written by an rnnbench that did not say which"


def upgrade(doc: JsonObject) -> JsonObject:
    """A version 1 (one machine) to 5 document as version 6, in a new dict. Version 4 renamed
    a case's `pit` (its parallel-in-time solve) to `parallel_in_time`; version 5 a case's
    `target` to `backend` (one word for what the registry names); version 6 added a record's
    `retimed` (0 where absent)."""
    version = doc.get("schema_version")
    if version == SCHEMA_VERSION:
        return doc
    upgraded = dict(doc)
    if version == 1:
        environment = doc["environment"]
        label = environment.get("machine") if isinstance(environment, dict) else None
        label = label or "?"
        cases = doc["cases"] if isinstance(doc["cases"], list) else []
        upgraded = {k: v for k, v in doc.items() if k not in ("environment", "selfcheck")}
        upgraded.update(
            machines={
                label: {
                    "environment": environment,
                    "selfcheck": doc.get("selfcheck") or {},
                    "hosts": [],
                    "workers": [],
                }
            },
            client=None,
            cases=[{**r, "machine": label} if isinstance(r, dict) else r for r in cases],
        )
    found = upgraded.get("cases")
    if isinstance(found, list):
        if isinstance(version, int) and version < 4:
            found = [_renamed(r, "pit", "parallel_in_time") for r in found]
        upgraded["cases"] = [_case_renamed(r, "target", "backend") for r in found]
    upgraded["schema_version"] = SCHEMA_VERSION
    return upgraded


def _case_renamed(record: Any, old: str, new: str) -> Any:
    """A record whose case (record["case"]) renames a field."""
    if not isinstance(record, dict) or not isinstance(record.get("case"), dict):
        return record
    return {**record, "case": _renamed(record["case"], old, new)}


def _renamed(record: Any, old: str, new: str) -> Any:
    if not isinstance(record, dict) or old not in record:
        return record
    return {(new if k == old else k): v for k, v in record.items()}


def add_machine(doc: ResultsDocument, environment, selfcheck, host=None, worker=None) -> str:
    """Enter the machine that timed a group (label: environment["machine"]) and return its
    label. A label already in the file must name the same environment (the COMPARABLE keys):
    else a ResultsError, since its timings would be pooled with another machine's."""
    label = environment["machine"]
    known = doc.machines.get(label)
    if known is None:
        doc.machines[label] = Machine.model_validate(
            {
                "environment": environment,
                "selfcheck": selfcheck,
                "hosts": [host] if host else [],
                "workers": [worker] if worker else [],
            }
        )
        return label
    conflict = label_conflict(doc.machines, environment)
    if conflict:
        raise ResultsError(conflict)
    for names, value in ((known.hosts, host), (known.workers, worker)):
        if value and value not in names:
            names.append(value)
    return label


def label_conflict(machines: dict[str, Machine], environment: JsonObject) -> str | None:
    """Why `environment` may not time under its label, given the machines already known (the
    label names another environment); None when it may."""
    from harness.machine.environment import differences

    label = environment["machine"]
    known = machines.get(label)
    changed = [] if known is None else differences(known.environment.model_dump(), environment)
    if not changed:
        return None
    return (
        f"machine label {label!r} already names another environment in this file "
        f"({'; '.join(changed)}): give each kind of machine its own label "
        "(--machine, or RNNBENCH_MACHINE on a Dask worker)"
    )


@dataclasses.dataclass(frozen=True)
class MachineView:
    """One machine's part of a results document, as the analysis reads it."""

    environment: Environment
    selfcheck: dict[str, float]
    hosts: list[str]
    cases: list[CaseRecord]
    lost: list[CaseRecord]  # records no machine kept (only the first view holds them)
    suite: SuiteInfo
    wall_s: float | None
    source: str = ""

    @property
    def machine(self) -> str:
        return self.environment.machine or "?"


def machine_views(doc: ResultsDocument, source: str = "") -> list[MachineView]:
    """One single-machine view per machine of a checked document."""
    lost = [r for r in doc.cases if r.machine is None]
    return [
        MachineView(
            entry.environment,
            dict(entry.selfcheck),
            list(entry.hosts),
            [r for r in doc.cases if r.machine == label],
            lost if number == 0 else [],
            doc.suite,
            doc.wall_s,
            source,
        )
        for number, (label, entry) in enumerate(doc.machines.items())
    ]


def check_writable(path: str | Path) -> None:
    """Refuse, before anything is measured, a results path this process cannot write
    (harness/output_paths.py check_file), as a ResultsError; its folder is made if missing
    (the writer's lock file goes beside it)."""
    from harness.output_paths import OutputPathError, check_file

    try:
        check_file(path, "results file")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OutputPathError as exc:
        raise ResultsError(str(exc)) from None
    except OSError as exc:
        raise ResultsError(f"cannot write results file {path}: {exc.strerror or exc}") from None


def dumps(doc: ResultsDocument) -> str:
    """The document as JSON, validated first: what is written is what a reader accepts."""
    data = doc.model_dump(mode="json")
    try:
        ResultsDocument.model_validate(data)
    except ValidationError as exc:
        raise ResultsError(one_line(exc, "refusing to write a results document")) from None
    return compact_json.dumps(data) + "\n"


def save_results(path: str | Path, doc: ResultsDocument) -> None:
    write_text_atomic(path, dumps(doc))


def new_document(suite, client: JsonObject, started: str) -> ResultsDocument:
    """client: where the run is driven from: {machine, host, scheduler (a Dask address or
    None), git}; the machines fill in as they time groups."""
    return ResultsDocument(
        suite=suite.info(),
        client=Client.model_validate(client),
        started=started,
    )


def done_ids(doc: ResultsDocument) -> set[str]:
    return {r.id for r in doc.cases if r.status in DONE}


def upsert(doc: ResultsDocument, record: CaseRecord) -> None:
    """Replace the record with the same id (an error being retried), or append."""
    for number, existing in enumerate(doc.cases):
        if existing.id == record.id:
            doc.cases[number] = record
            return
    doc.cases.append(record)
