"""The report's "Parity checks" section: every parity JSON given to `rnnbench report`, what it
checked, its verdict and, for one that did not pass, its first failure and how many there were.
A failing record is shown failing, never left out."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harness.markdown import table_of
from harness.records.parity import ParityRecord

TITLE = "Parity checks"
LEGACY_NOTE = (
    "some parity files predate the pass rule's own share: there max |error| / atol, "
    "an upper bound, capped at 100% for a passed check"
)


@dataclasses.dataclass(frozen=True)
class ParityCheck:
    """One parity record as the section shows it."""

    source: str
    model: str  # the model file checked, or the built-in matrix
    against: str
    verdict: str
    checks: str  # how many passed, of how many compared, and how many were skipped
    failures: int
    first_failure: str


def entry(source: str, record: ParityRecord) -> ParityCheck:
    """One parity record read from `source`, as the section shows it."""
    from harness.parity.report import compared, failed_checks, failures

    lines = failures(record.results, record.training)
    checked, failed = compared(record.results), failed_checks(record.results)
    if lines:
        verdict = "FAILED"
    elif checked == 0:
        verdict = "FAILED: nothing was compared"
    else:
        verdict = "passed"
    return ParityCheck(
        source,
        record.model.path if record.model else "the built-in matrix",
        record.against or "",
        verdict,
        f"{checked - failed} of {checked} passed, {len(record.results) - checked} skipped",
        len(lines),
        lines[0] if lines else "",
    )


def markdown(entries: list[ParityCheck]) -> str:
    if not entries:
        return ""
    failing = [e for e in entries if e.verdict != "passed"]
    head = (
        f"**{len(failing)} of {len(entries)} parity records did not pass.**"
        if failing
        else f"All {len(entries)} parity records passed."
    )
    columns = [
        ("parity record", lambda e: e.source),
        ("model", lambda e: e.model),
        ("export", lambda e: e.against),
        ("verdict", lambda e: e.verdict),
        ("backend x case checks", lambda e: e.checks),
        ("failures", lambda e: e.failures),
        ("first failure", lambda e: e.first_failure),
    ]
    return head + "\n\n" + table_of(columns, entries)


@dataclasses.dataclass(frozen=True)
class ParityGrid:
    """The heatmap's data: backends (rows), "cell dtype" columns, the worst share of the
    pass rule's tolerance in each (None: skipped), and a note when some share is a bound."""

    backends: list[str]
    columns: list[str]
    values: list[list[float | None]]
    note: str


def parity_grid(parities: Sequence[ParityRecord]) -> ParityGrid | None:
    """The heatmap's data, None when no backend was checked."""
    from harness.parity.report import tolerance_grid

    grid = tolerance_grid(r.model_dump() for doc in parities for r in doc.results)
    if not grid:
        return None
    backends = sorted({k[0] for k in grid})
    columns = sorted({k[1] for k in grid})
    values = [[grid[(b, c)].share if (b, c) in grid else None for c in columns] for b in backends]
    exact = all(entry.exact for entry in grid.values())
    return ParityGrid(backends, columns, values, "" if exact else LEGACY_NOTE)


def audit_table(parities: Sequence[ParityRecord]) -> str:
    from harness.onnx.audit_table import format_audit
    from harness.parity.report import audit_rows_from_records

    rows = audit_rows_from_records(r.model_dump() for doc in parities for r in doc.results)
    return format_audit(rows, markdown=True) if rows else ""
