"""The report's "Parity checks" section: every parity JSON given to `rnnbench report`, what it
checked, its verdict and, for one that did not pass, its first failure and how many there were.
A failing record is shown failing, never left out."""

from __future__ import annotations

from typing import Any

from harness.markdown import table_of

TITLE = "Parity checks"


def entry(source: str, record) -> dict[str, Any]:
    """One parity record (harness/records/parity.py ParityRecord) read from `source`, as the
    section shows it."""
    from harness.parity.report import compared, failed_checks, failures

    lines = failures(record.results, record.training)
    checked, failed = compared(record.results), failed_checks(record.results)
    if lines:
        verdict = "FAILED"
    elif checked == 0:
        verdict = "FAILED: nothing was compared"
    else:
        verdict = "passed"
    return {
        "source": source,
        "model": record.model.path if record.model else "the built-in matrix",
        "against": record.against or "",
        "verdict": verdict,
        "checks": f"{checked - failed} of {checked} passed, "
        f"{len(record.results) - checked} skipped",
        "failures": len(lines),
        "first_failure": lines[0] if lines else "",
    }


def markdown(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return ""
    failing = [e for e in entries if e["verdict"] != "passed"]
    head = (
        f"**{len(failing)} of {len(entries)} parity records did not pass.**"
        if failing
        else f"All {len(entries)} parity records passed."
    )
    columns = [
        ("parity record", lambda e: e["source"]),
        ("model", lambda e: e["model"]),
        ("export", lambda e: e["against"]),
        ("verdict", lambda e: e["verdict"]),
        ("backend x case checks", lambda e: e["checks"]),
        ("failures", lambda e: e["failures"]),
        ("first failure", lambda e: e["first_failure"]),
    ]
    return head + "\n\n" + table_of(columns, entries)
