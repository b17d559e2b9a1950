"""`rnnbench compare BASE NEW --fail-on median:10%`: per-case ratios of NEW to BASE, a
Mann-Whitney U test on the raw samples, the geometric mean, and an exit status for CI.

A case regresses when its statistic grew by more than the threshold AND the samples differ
significantly (two-sided p < alpha): a bare ratio on a noisy machine is not evidence."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from harness.bench.metadata import differences

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


def compare_docs(base: dict[str, Any], new: dict[str, Any], gate: Gate) -> dict[str, Any]:
    base_cases = {r["id"]: r for r in base["cases"] if r["status"] == "ok"}
    rows, only_base = [], sorted(set(base_cases))
    for record in new["cases"]:
        old = base_cases.get(record["id"])
        if old is None or record["status"] != "ok":
            continue
        only_base.remove(record["id"])
        ratio = record["stats"][gate.stat] / old["stats"][gate.stat]
        p = mann_whitney(old["samples_s"], record["samples_s"])
        verdict = "same"
        if p < ALPHA and ratio > 1 + gate.threshold:
            verdict = "REGRESSION"
        elif p < ALPHA and ratio < 1 / (1 + gate.threshold):
            verdict = "faster"
        elif p < ALPHA:
            verdict = "slower" if ratio > 1 else "quicker"  # significant, within the threshold
        rows.append(
            {
                "id": record["id"],
                "base": old["stats"][gate.stat],
                "new": record["stats"][gate.stat],
                "ratio": ratio,
                "p": p,
                "verdict": verdict,
            }
        )
    geomean = math.exp(sum(math.log(r["ratio"]) for r in rows) / len(rows)) if rows else None
    return {
        "gate": dataclasses.asdict(gate),
        "rows": rows,
        "geomean": geomean,
        "regressions": [r["id"] for r in rows if r["verdict"] == "REGRESSION"],
        "only_in_base": only_base,
        "environment_differences": differences(base["environment"], new["environment"]),
    }


def format_comparison(result: dict[str, Any]) -> str:
    gate = result["gate"]
    lines = []
    if result["environment_differences"]:
        lines.append(
            "WARNING: different machines or library versions; ratios mix hardware and "
            "software: " + "; ".join(result["environment_differences"])
        )
    header = f"{'case':60}  {'base':>10}  {'new':>10}  {'new/base':>8}  {'p':>7}  verdict"
    lines += [
        f"{gate['stat']} seconds per call; regression: > +{100 * gate['threshold']:g}% "
        f"and Mann-Whitney p < {ALPHA}",
        header,
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['id'][:60]:60}  {r['base']:10.3g}  {r['new']:10.3g}  "
            f"{r['ratio']:8.3f}  {r['p']:7.4f}  {r['verdict']}"
        )
    if result["geomean"] is not None:
        lines.append(
            f"geometric mean of new/base over {len(result['rows'])} cases: {result['geomean']:.3f}"
        )
    if result["only_in_base"]:
        lines.append(f"{len(result['only_in_base'])} cases of BASE were not timed in NEW")
    lines.append(f"{len(result['regressions'])} regression(s)")
    return "\n".join(lines)
