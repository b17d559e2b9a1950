"""The report's Runs table: each run's machine, suite and cases, how many rounds each case got
(the budget plans fewer on a slow or busy machine), how many were retimed (their worker was
stopped or descheduled in them), its wall time and commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from harness.markdown import markdown_table
from harness.records.store import MachineView

HEADER = ["machine", "suite", "cases", "rounds a case", "retimed", "wall", "commit"]
NOTE = (
    "Rounds a case: the interleaved rounds each timed case got (fewer than the suite asks "
    "where the budget planned fewer). Retimed: rounds timed again because their worker was "
    "stopped or descheduled in them (wall time over what their CPU time allows); none of them "
    "is a sample."
)


def runs_table(benches: Sequence[MachineView]) -> str:
    rows = [
        [doc.environment.machine, doc.suite.name, len(doc.cases)]
        + [rounds_got(doc), retimed(doc), wall(doc)]
        + [(doc.environment.git.get("commit") or "")[:10] or "not recorded"]
        for doc in benches
    ]
    return markdown_table(HEADER, rows) + "\n\n" + NOTE


def rounds_got(doc: MachineView) -> str:
    """'7', '3 of 7' (the suite asks 7, the budget planned 3), or '3 to 7 of 7: 3 x 40
    cases, 7 x 17 cases' over the run's timed cases; '' with none timed."""
    counts = Counter(len(r.samples_s) for r in doc.cases if r.status == "ok")
    if not counts:
        return ""
    asked = doc.suite.timing.rounds
    if len(counts) == 1:
        (got,) = counts
        return f"{got}" if got >= asked else f"{got} of {asked}"
    spread = ", ".join(f"{n} x {counts[n]} cases" for n in sorted(counts))
    return f"{min(counts)} to {max(counts)} of {asked}: {spread}"


def retimed(doc: MachineView) -> str:
    """'none', or 'N in K cases': rounds timed again, never kept as samples."""
    kept = [r for r in doc.cases if r.status == "ok" and r.retimed]
    if not kept:
        return "none"
    return f"{sum(r.retimed for r in kept)} in {len(kept)} cases"


def wall(doc: MachineView) -> str:
    """The run's wall time; with the machine's own time on its groups where the records
    have it (a machine of a Dask run is busy for part of the run)."""
    total = f"{doc.wall_s or 0:.0f} s"
    groups = {r.group_run: r.group_s for r in doc.cases}
    busy = [seconds for run, seconds in groups.items() if run is not None and seconds is not None]
    if not groups or len(busy) < len(groups):
        return total
    return f"{sum(busy):.0f} s busy of {total}"
