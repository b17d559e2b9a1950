"""The recovery file of a results file whose write failed (a full disk, a file-size limit):
the case records measured since its last good write, and the machines that timed them, beside
the results file as NAME.recovery. `rnnbench bench --resume` adds them to the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, ValidationError

from harness.records.base import Record
from harness.records.errors import one_line
from harness.records.results import CaseRecord, Machine, ids_name_fields

KIND: Final = "rnnbench-recovery"


class Recovery(Record):
    kind: Literal["rnnbench-recovery"] = KIND
    results: str
    machines: dict[str, Machine]
    cases: Annotated[list[CaseRecord], AfterValidator(ids_name_fields)]


def dumps(doc, unsaved: list[CaseRecord], out: Path) -> str:
    labels = {r.machine for r in unsaved if r.machine}
    found = Recovery(
        results=str(out),
        machines={k: v for k, v in doc.machines.items() if k in labels},
        cases=unsaved,
    )
    return json.dumps(found.model_dump(mode="json"), indent=1, allow_nan=False) + "\n"


def merge(doc, path: Path) -> None:
    """Add the recovery file's machines and records to `doc` (a record there replaces one of
    the same id: it is newer)."""
    from harness.records import store as results

    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text, parse_constant=results.refuse_constant)
        found = Recovery.model_validate(data, strict=True)
    except (OSError, ValueError, RecursionError) as exc:
        if isinstance(exc, ValidationError):
            raise results.ResultsError(one_line(exc, f"recovery file {path} is corrupt")) from None
        why = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise results.ResultsError(f"recovery file {path} cannot be read: {why}") from None
    beside = Path(path).with_name(Path(path).name.removesuffix(".recovery"))
    if Path(found.results).name != beside.name:
        raise results.ResultsError(
            f"recovery file {path} belongs to {found.results}, not to {beside}: move it away"
        )
    for label, machine in found.machines.items():
        if label not in doc.machines:
            doc.machines[label] = machine
    for record in found.cases:
        results.upsert(doc, record)
