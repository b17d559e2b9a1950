"""`rnnbench compare BASE NEW --fail-on median:10%`: per-case ratios of NEW to BASE, a
Mann-Whitney U test on the raw samples, the geometric mean, and an exit status for CI.

A case regresses when its statistic grew by more than the threshold AND the samples differ
significantly (two-sided p < alpha): a bare ratio on a noisy machine is not evidence."""

from __future__ import annotations

import dataclasses
import math
import re
from functools import cache
from typing import Any

from harness.bench.metadata import differences

STATS = ("min", "median", "mean", "p90", "p99")
ALPHA = 0.05


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
    """Two-sided p-value of the Mann-Whitney U test: exact (by counting) when there are no
    ties and both samples are small, else the normal approximation with tie correction and
    continuity correction."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = sorted((v, i) for i, v in enumerate(list(a) + list(b)))
    ranks, ties, position = [0.0] * (n1 + n2), [], 0
    while position < len(pooled):
        end = position
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[position][0]:
            end += 1
        for k in range(position, end + 1):
            ranks[pooled[k][1]] = (position + end) / 2 + 1
        ties.append(end - position + 1)
        position = end + 1
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = min(u1, n1 * n2 - u1)
    if all(t == 1 for t in ties) and n1 + n2 <= 50:
        total = math.comb(n1 + n2, n1)
        tail = sum(_u_count(n1, n2, k) for k in range(int(u) + 1)) / total
        return min(1.0, 2 * tail)
    n = n1 + n2
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term))
    if sigma == 0:
        return 1.0
    z = (abs(u1 - n1 * n2 / 2) - 0.5) / sigma
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


@cache
def _u_count(n1: int, n2: int, u: int) -> int:
    """How many orderings of n1 + n2 distinct values give U = u."""
    if u < 0 or u > n1 * n2:
        return 0
    if n1 == 0 or n2 == 0:
        return 1 if u == 0 else 0
    return _u_count(n1 - 1, n2, u - n2) + _u_count(n1, n2 - 1, u)


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
