"""The recurrence penalty (RNN time over the time of its FLOPs as one product), against the
same backend's product and against the machine's best product of those FLOPs, and the share
of the machine's best measured product (harness.machine.model) each case reaches.

The baseline backend comes from the registry (registry.product_baseline); a backend without
one (a dispatch-bound Python loop such as TF eager, or a backend with no product of its own)
is kept out of the penalty table and listed with its implementation as recorded."""

from __future__ import annotations

import dataclasses

from harness.analysis.rows import Key, TimedRow, key, ratio
from harness.machine.model import MachineModel, Peak
from harness.registry import BACKENDS, HEADLINE, product_baseline
from harness.stats import Interval


class PenaltyRow(TimedRow):
    """A forward case against the time of its FLOPs as one product: its own backend's
    (`penalty`) and the fastest of any backend on its device (`best_penalty`), each a ratio
    with its interval."""

    baseline: str  # the backend whose product is the case's own
    gemm_median: float
    gemm_median_ci: Interval
    penalty: float
    penalty_ci: Interval
    best_backend: str
    best_median_ci: Interval
    best_penalty: float
    best_penalty_ci: Interval


class EfficiencyRow(TimedRow):
    """A case's achieved FLOP rate against the machine's best product and theoretical peak."""

    gflops: float
    peak: Peak | None
    fraction_of_peak: float | None
    fraction_of_theoretical: float | None


@dataclasses.dataclass(frozen=True)
class WithoutBaseline:
    """A forward backend kept out of the penalty table: its implementations, and why."""

    backend: str
    impl_class: str
    reason: str


def _products(table: list[TimedRow]) -> dict[Key, list[TimedRow]]:
    """Product rows by (their key without backend and mode): every backend's product of them."""
    out: dict[Key, list[TimedRow]] = {}
    for row in table:
        if row.mode == "gemm":
            out.setdefault(key(row, "backend", "mode"), []).append(row)
    return out


def penalties(table: list[TimedRow]) -> list[PenaltyRow]:
    """RNN time / time of its FLOPs as one product per layer, same shape, threads, device,
    machine and run: against the baseline backend's product (`penalty`) and against the
    fastest product of those FLOPs of any backend on the device (`best_penalty`). Rounds of
    one interleaved group pair: the median of the per-round ratios, with its interval."""
    products = _products(table)
    out = []
    for row in table:
        baseline = product_baseline(row.backend) if row.mode == "forward" else None
        found = products.get(key(row, "backend", "mode"), [])
        same = [p for p in found if p.backend == baseline]
        if baseline is None or not same:
            continue
        best = min((p for p in found if p.device == row.device), key=lambda p: p.median)
        interval, best_interval = ratio(row, same[0]), ratio(row, best)
        out.append(
            PenaltyRow(
                **dict(row),
                baseline=baseline,
                gemm_median=same[0].median,
                gemm_median_ci=same[0].median_ci,
                penalty=interval[0],
                penalty_ci=interval,
                best_backend=best.backend,
                best_median_ci=best.median_ci,
                best_penalty=best_interval[0],
                best_penalty_ci=best_interval,
            )
        )
    return out


def without_baseline(table: list[TimedRow]) -> list[WithoutBaseline]:
    """Forward backends with no product baseline: backend, implementations as recorded, why."""
    found: dict[str, set[str]] = {}
    for row in table:
        if row.mode == "forward" and product_baseline(row.backend) is None:
            found.setdefault(row.backend, set()).add(row.impl_class)
    return [
        WithoutBaseline(backend, "; ".join(sorted(impls)), _why(backend))
        for backend, impls in sorted(found.items())
    ]


def _why(backend: str) -> str:
    """The registry names no baseline ("") for a dispatch-bound loop; a backend that times
    no product of its own has none to offer."""
    entry = BACKENDS.get(backend)
    if entry is not None and entry.product_of == "":
        return "dispatch-bound: its per-step dispatch, not its FLOPs, sets its time"
    return "its backend times no product of its own (forward only)"


def efficiency(table: list[TimedRow], machine: MachineModel) -> list[EfficiencyRow]:
    """Achieved GFLOP/s per case, its share of the machine's best measured product (same
    device, dtype and threads) and of the theoretical peak when the environment states it."""
    out = []
    for row in table:
        if row.mode in ("peak", "bandwidth") or not row.flops:
            continue
        peak = machine.peaks.get((row.machine, row.device or "", row.dtype, row.threads))
        achieved = row.flops / row.median
        theory = peak.theoretical if peak else None
        out.append(
            EfficiencyRow(
                **dict(row),
                gflops=achieved / 1e9,
                peak=peak,
                fraction_of_peak=achieved / peak.flops if peak else None,
                fraction_of_theoretical=achieved / theory if theory else None,
            )
        )
    return out


def is_held(p: PenaltyRow) -> bool:
    """A penalty that is one: a recurrence (T > 1) that no product baseline beats (those are
    inconsistencies)."""
    return p.steps > 1 and p.best_penalty >= 1 and p.penalty >= 1


def held_penalties(penalty_rows: list[PenaltyRow], machine: str) -> list[PenaltyRow]:
    """The penalties on `machine` that are penalties (is_held)."""
    return [p for p in penalty_rows if p.machine == machine and is_held(p)]


def settled(penalty_rows: list[PenaltyRow], machine: str) -> tuple[str, list[PenaltyRow]] | None:
    """The penalties the answer and the findings quote on `machine`: the held ones whose
    interval against the best product stays above 1; from the headline backend where it has
    them, else the backend with the most. None: no such case."""
    held = [p for p in held_penalties(penalty_rows, machine) if p.best_penalty_ci[1] > 1]
    if not held:
        return None
    counts: dict[str, int] = {}
    for p in held:
        counts[p.backend] = counts.get(p.backend, 0) + 1
    backend = max(counts, key=lambda t: (t in HEADLINE, counts[t]))
    return backend, [p for p in held if p.backend == backend]
