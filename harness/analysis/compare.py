"""`rnnbench compare BASE NEW --fail-on median:10%`: per-case ratios of NEW to BASE, a
Mann-Whitney U test on the raw samples, the geometric mean, and an exit status for CI.

A case regresses when its statistic grew by more than the threshold AND the samples show it:
they differ significantly (two-sided Mann-Whitney p < alpha), or every NEW sample is beyond
every BASE sample by more than the threshold (with a few rounds a test cannot reach alpha, and
a slowdown no round of noise bridges is evidence enough). A bare ratio on a noisy machine is
not evidence. Every statistic is derived from the samples, never read from the file.

Like is compared with like: each machine of NEW against the same machine (label) of BASE.
Machines only one file has are listed, not compared; two files of one machine each are
compared even under different labels, with the warning the environments' differences give."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence

from harness.machine.environment import differences
from harness.markdown import text_table
from harness.records.store import MachineView, ResultsDocument, machine_views

STATS = ("min", "median", "mean", "p90", "p99")
ALPHA = 0.05
EXACT_MAX = 50  # values in both samples together, for the exact distribution of U


class GateError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Gate:
    stat: str
    threshold: float  # a fraction: 0.10 for 10%

    @classmethod
    def parse(cls, text: str) -> Gate:
        match = re.fullmatch(r"(\w+):(\d+(?:\.\d+)?)%", text.strip())
        if not match or match.group(1) not in STATS:
            raise GateError(
                f"--fail-on {text!r} is invalid: allowed STAT:N% with STAT one of "
                f"{', '.join(STATS)}, e.g. median:10%"
            )
        return cls(match.group(1), float(match.group(2)) / 100)


def mann_whitney(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (scipy.stats.mannwhitneyu): exact when
    there are no ties and both samples together are at most EXACT_MAX values, else the normal
    approximation with tie correction and continuity correction. 1.0 for an empty sample, and
    when every value is the same."""
    if len(a) == 0 or len(b) == 0:
        return 1.0
    from scipy.stats import mannwhitneyu

    pooled = list(a) + list(b)
    if len(set(pooled)) == 1:
        return 1.0
    exact = len(set(pooled)) == len(pooled) and len(pooled) <= EXACT_MAX
    method = "exact" if exact else "asymptotic"
    result = mannwhitneyu(a, b, alternative="two-sided", method=method, use_continuity=True)
    return min(1.0, float(result.pvalue))


@dataclasses.dataclass(frozen=True)
class ComparedCase:
    """One case both files timed on a like machine: its statistic in each, NEW over BASE,
    the Mann-Whitney p of their samples and the verdict (VERDICTS)."""

    id: str
    base: float
    new: float
    ratio: float
    p: float
    verdict: str
    machine: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """NEW against BASE: the cases compared, their geometric mean, and what was not compared."""

    gate: Gate
    rows: list[ComparedCase]
    geomean: float | None
    regressions: list[str]
    only_in_base: list[str]
    timed_on_another_machine: list[str]
    machines_not_compared: list[str]
    environment_differences: list[str]

    def as_json(self) -> str:
        """What `compare --json` writes."""
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"


def compare_docs(base: ResultsDocument, new: ResultsDocument, gate: Gate) -> Comparison:
    """base, new: checked results documents."""
    pairs, unmatched = machine_pairs(base, new)
    rows: list[ComparedCase] = []
    only_base: list[str] = []
    elsewhere: list[str] = []
    environment: list[str] = []
    timed_in_new = {r.id for r in new.cases if r.status == "ok"}
    for old_view, new_view in pairs:
        label = new_view.machine
        found, missing = compare_cases(old_view, new_view, gate)
        rows += [dataclasses.replace(row, machine=label) for row in found]
        only_base += [m for m in missing if m not in timed_in_new]
        elsewhere += [m for m in missing if m in timed_in_new]  # by another machine of NEW
        old_label = old_view.machine
        renamed = [f"machine: {old_label} -> {label}"] if old_label != label else []
        changed = renamed + differences(
            old_view.environment.model_dump(), new_view.environment.model_dump()
        )
        environment += [f"{label}: {c}" if len(pairs) > 1 else c for c in changed]
    geomean = math.exp(sum(math.log(r.ratio) for r in rows) / len(rows)) if rows else None
    return Comparison(
        gate,
        rows,
        geomean,
        [r.id for r in rows if r.verdict == "REGRESSION"],
        only_base,
        elsewhere,
        unmatched,
        environment,
    )


def machine_pairs(
    base: ResultsDocument, new: ResultsDocument
) -> tuple[list[tuple[MachineView, MachineView]], list[str]]:
    """([(BASE view, NEW view)] of the same machine, ["label (only in BASE|NEW)"])."""
    old = {v.machine: v for v in machine_views(base)}
    now = {v.machine: v for v in machine_views(new)}
    if len(old) == 1 and len(now) == 1:
        return [(next(iter(old.values())), next(iter(now.values())))], []
    pairs = [(old[label], now[label]) for label in sorted(set(old) & set(now))]
    unmatched = [f"{m} (only in BASE)" for m in sorted(set(old) - set(now))]
    unmatched += [f"{m} (only in NEW)" for m in sorted(set(now) - set(old))]
    return pairs, unmatched


def compare_cases(
    base: MachineView, new: MachineView, gate: Gate
) -> tuple[list[ComparedCase], list[str]]:
    """(one row per case both timed, the ids only BASE timed) of two single-machine views.
    The statistics compared are derived from each case's samples, never read from the file."""
    base_cases = {r.id: r for r in base.cases if r.status == "ok"}
    rows, only_base = [], sorted(set(base_cases))
    for record in new.cases:
        old = base_cases.get(record.id)
        if old is None or record.status != "ok":
            continue
        only_base.remove(record.id)
        before = float(getattr(old.derived(), gate.stat))
        after = float(getattr(record.derived(), gate.stat))
        ratio = after / before
        p = mann_whitney(old.samples_s, record.samples_s)
        verdict = judge(ratio, p, old.samples_s, record.samples_s, gate.threshold)
        rows.append(ComparedCase(record.id, before, after, ratio, p, verdict))
    return rows, only_base


VERDICTS = {
    "REGRESSION": "slower by more than the threshold, and shown by the samples",
    "faster": "faster by more than the threshold, and shown by the samples",
    "slower": "significantly slower, but by less than the threshold",
    "quicker": "significantly faster, but by less than the threshold",
    "same": "no difference the samples show",
}


def judge(
    ratio: float, p: float, base: Sequence[float], new: Sequence[float], threshold: float
) -> str:
    """The verdict of one case (VERDICTS): shown = significant, or every NEW sample beyond
    every BASE sample by more than the threshold (or short of it, for a speed-up)."""
    slower = min(new) > max(base) * (1 + threshold)
    faster = max(new) < min(base) / (1 + threshold)
    if ratio > 1 + threshold and (p < ALPHA or slower):
        return "REGRESSION"
    if ratio < 1 / (1 + threshold) and (p < ALPHA or faster):
        return "faster"
    if p < ALPHA:
        return "slower" if ratio > 1 else "quicker"
    return "same"


def _cells(row: ComparedCase, several: bool) -> list[str]:
    cells = [row.id, f"{row.base:.3g}", f"{row.new:.3g}", f"{row.ratio:.3f}"]
    cells += [f"{row.p:.4f}", row.verdict]
    return cells + ([row.machine] if several else [])


def format_comparison(result: Comparison) -> str:
    """The comparison as plain text (what a pipe or a log gets)."""
    return "\n".join(
        block if isinstance(block, str) else text_table(*block)
        for block in comparison_blocks(result)
    )


Block = str | tuple[list[str], list[list[str]]]  # a line, or a table (header, rows)


def comparison_blocks(result: Comparison) -> list[Block]:
    """The comparison's lines, its table as (header, rows) in between."""
    gate = result.gate
    lines: list[Block] = []
    if result.environment_differences:
        lines.append(
            "WARNING: different machines or library versions; ratios mix hardware and "
            "software: " + "; ".join(result.environment_differences)
        )
    several = len({r.machine for r in result.rows}) > 1
    header = ["case", "base", "new", "new/base", "p", "verdict"] + (["machine"] if several else [])
    threshold = f"{100 * gate.threshold:g}%"
    if result.rows:
        lines += [
            f"{gate.stat} seconds per call, derived from each case's samples; verdicts:",
            *(f"  {name:10} {text}" for name, text in VERDICTS.items()),
            f"  (threshold {threshold}; shown = Mann-Whitney p < {ALPHA}, or every NEW sample "
            f"beyond every BASE sample by more than {threshold})",
            (header, [_cells(r, several) for r in result.rows]),
        ]
    if result.geomean is not None:
        lines.append(
            f"geometric mean of new/base over {len(result.rows)} cases: {result.geomean:.3f}"
        )
    if result.machines_not_compared:
        lines.append(
            "machines not compared (no like for like): " + ", ".join(result.machines_not_compared)
        )
    if result.timed_on_another_machine:
        lines.append(
            f"{len(result.timed_on_another_machine)} cases of BASE were timed on another "
            "machine in NEW: not compared"
        )
    if result.only_in_base:
        lines.append(f"{len(result.only_in_base)} cases of BASE were not timed in NEW")
    if result.rows:
        lines.append(f"{len(result.regressions)} regression(s)")
    return lines
