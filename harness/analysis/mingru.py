"""minGRU against GRU: per (machine, backend, B, H, threads, T), GRU's T dependent steps, minGRU's
parallel scan and minGRU's step loop side by side, and from which T the scan wins."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.analysis.rows import ratio

LABELS = ("gru", "mingru-scan", "mingru-loop")
_WHERE = ("machine", "backend", "batch", "hidden", "threads", "steps")
# (name of the ratio, fast, slow): the scan's time over the other's
RATIOS = (("scan_over_gru", "mingru-scan", "gru"), ("scan_over_loop", "mingru-scan", "mingru-loop"))


def _label(row: dict[str, Any]) -> str | None:
    if row["cell"] == "gru" and row["mode"] == "forward":
        return "gru"
    if row["cell"] == "mingru" and row["mode"] == "forward":
        return "mingru-scan"
    if row["cell"] == "mingru" and row["mode"] == "sequential":
        return "mingru-loop"
    return None


def mingru_vs_gru(table: list[dict]) -> list[dict[str, Any]]:
    """Rows with each label's median (and `<label>_ci`), and the scan's time over GRU's and
    over the loop's as intervals (`scan_over_gru`, `scan_over_loop`)."""
    grid: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for row in table:
        label = _label(row)
        if label:
            grid[tuple(row[k] for k in _WHERE)][label] = row
    out = []
    for where, found in sorted(grid.items()):
        if "mingru-scan" in found and ("gru" in found or "mingru-loop" in found):
            entry: dict[str, Any] = dict(zip(_WHERE, where, strict=True))
            for label, row in found.items():
                entry[label], entry[f"{label}_ci"] = row["median"], row["median_ci"]
            for name, fast, slow in RATIOS:
                if slow in found:
                    entry[name] = ratio(found[fast], found[slow])
            out.append(entry)
    return out


def first_win(series: list[dict], fast: str, slow: str) -> int | None:
    """The smallest T from which `fast` beats `slow` at every longer T measured."""
    points = sorted((r["steps"], r.get(fast), r.get(slow)) for r in series)
    points = [p for p in points if p[1] is not None and p[2] is not None]
    for index, (steps, _, _) in enumerate(points):
        if all(f < s for _, f, s in points[index:]):
            return steps
    return None


def unclear_wins(series: list[dict], name: str, from_steps: int | None) -> list[int]:
    """The T (from `from_steps` on) where the ratio `name` has an interval reaching 1: there
    the win is not established by the samples."""
    if from_steps is None:
        return []
    return [
        r["steps"]
        for r in sorted(series, key=lambda r: r["steps"])
        if r["steps"] >= from_steps and name in r and r[name][2] >= 1
    ]
