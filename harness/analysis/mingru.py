"""minGRU against GRU: per (machine, backend, B, H, threads, T), GRU's T dependent steps, minGRU's
parallel scan and minGRU's step loop side by side, and from which T the scan wins."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence

from harness.analysis.rows import TimedRow, ratio
from harness.stats import Interval

LABELS = ("gru", "mingru-scan", "mingru-loop")
# (name of the ratio, fast, slow): the scan's time over the other's
RATIOS = (("scan_over_gru", "mingru-scan", "gru"), ("scan_over_loop", "mingru-scan", "mingru-loop"))


@dataclasses.dataclass(frozen=True)
class MinGRURow:
    """One (machine, backend, B, H, threads, T): each label's median with its interval (None:
    not timed), and the scan's time over GRU's and over the loop's."""

    machine: str
    backend: str
    batch: int
    hidden: int
    threads: int
    steps: int
    gru: Interval | None
    scan: Interval | None
    loop: Interval | None
    scan_over_gru: Interval | None
    scan_over_loop: Interval | None

    def median_ci(self, label: str) -> Interval | None:
        """The median of `label` (one of LABELS) with its interval."""
        return {"gru": self.gru, "mingru-scan": self.scan, "mingru-loop": self.loop}[label]

    def ratio(self, name: str) -> Interval | None:
        """The ratio `name` (scan_over_gru or scan_over_loop)."""
        return {"scan_over_gru": self.scan_over_gru, "scan_over_loop": self.scan_over_loop}[name]


def _label(row: TimedRow) -> str | None:
    if row.cell == "gru" and row.mode == "forward":
        return "gru"
    if row.cell == "mingru" and row.mode == "forward":
        return "mingru-scan"
    if row.cell == "mingru" and row.mode == "sequential":
        return "mingru-loop"
    return None


def mingru_vs_gru(table: Sequence[TimedRow]) -> list[MinGRURow]:
    """A row wherever the scan was timed beside GRU or the loop."""
    grid: dict[tuple[str, str, int, int, int, int], dict[str, TimedRow]] = defaultdict(dict)
    for row in table:
        label = _label(row)
        if label:
            where = (row.machine, row.backend, row.batch, row.hidden, row.threads, row.steps)
            grid[where][label] = row
    out = []
    for where, found in sorted(grid.items()):
        if "mingru-scan" in found and ("gru" in found or "mingru-loop" in found):
            medians = {
                label: found[label].median_ci if label in found else None for label in LABELS
            }
            ratios = {
                name: ratio(found[fast], found[slow]) if slow in found else None
                for name, fast, slow in RATIOS
            }
            out.append(
                MinGRURow(
                    *where,
                    medians["gru"],
                    medians["mingru-scan"],
                    medians["mingru-loop"],
                    ratios["scan_over_gru"],
                    ratios["scan_over_loop"],
                )
            )
    return out


def first_win(series: Sequence[MinGRURow], fast: str, slow: str) -> int | None:
    """The smallest T from which `fast` beats `slow` (labels) at every longer T measured."""
    points = []
    for row in sorted(series, key=lambda r: r.steps):
        f, s = row.median_ci(fast), row.median_ci(slow)
        if f is not None and s is not None:
            points.append((row.steps, f[0], s[0]))
    for index, (steps, _, _) in enumerate(points):
        if all(f < s for _, f, s in points[index:]):
            return steps
    return None


def unclear_wins(series: Sequence[MinGRURow], name: str, from_steps: int | None) -> list[int]:
    """The T (from `from_steps` on) where the ratio `name` has an interval reaching 1: there
    the win is not established by the samples."""
    if from_steps is None:
        return []
    out = []
    for row in sorted(series, key=lambda r: r.steps):
        interval = row.ratio(name)
        if row.steps >= from_steps and interval is not None and interval[2] >= 1:
            out.append(row.steps)
    return out
