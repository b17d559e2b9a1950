"""The recurrence penalty (RNN time over the time of its FLOPs as one product), against the
same backend's product and against the machine's best product of those FLOPs, and the share
of the machine's best measured product (harness.machine.model) each case reaches.

The baseline backend comes from the registry (registry.product_baseline); a backend without
one (a dispatch-bound Python loop such as TF eager, or a backend with no product of its own)
is kept out of the penalty table and listed with its implementation as recorded."""

from __future__ import annotations

from typing import Any

from harness.analysis.rows import key, ratio
from harness.registry import BACKENDS, HEADLINE, product_baseline


def _products(table: list[dict]) -> dict[tuple, list[dict]]:
    """Product rows by (their key without backend and mode): every backend's product of them."""
    out: dict[tuple, list[dict]] = {}
    for row in table:
        if row["mode"] == "gemm":
            out.setdefault(key(row, "backend", "mode"), []).append(row)
    return out


def penalties(table: list[dict]) -> list[dict[str, Any]]:
    """RNN time / time of its FLOPs as one product per layer, same shape, threads, device,
    machine and run: against the baseline backend's product (`penalty`) and against the
    fastest product of those FLOPs of any backend on the device (`best_penalty`). Rounds of
    one interleaved group pair: the median of the per-round ratios, with its interval."""
    products = _products(table)
    out = []
    for row in table:
        baseline = product_baseline(row["backend"]) if row["mode"] == "forward" else None
        found = products.get(key(row, "backend", "mode"), [])
        same = [p for p in found if p["backend"] == baseline]
        if not same:
            continue
        best = min((p for p in found if p["device"] == row["device"]), key=lambda p: p["median"])
        interval, best_interval = ratio(row, same[0]), ratio(row, best)
        out.append(
            {
                **row,
                "baseline": baseline,
                "gemm_median": same[0]["median"],
                "gemm_median_ci": same[0]["median_ci"],
                "penalty": interval[0],
                "penalty_ci": interval,
                "best_backend": best["backend"],
                "best_median_ci": best["median_ci"],
                "best_penalty": best_interval[0],
                "best_penalty_ci": best_interval,
            }
        )
    return out


def without_baseline(table: list[dict]) -> list[dict[str, Any]]:
    """Forward backends with no product baseline: backend, implementations as recorded, why."""
    found: dict[str, set[str]] = {}
    for row in table:
        if row["mode"] == "forward" and product_baseline(row["backend"]) is None:
            found.setdefault(row["backend"], set()).add(row["impl_class"])
    return [
        {"backend": backend, "impl_class": "; ".join(sorted(impls)), "reason": _why(backend)}
        for backend, impls in sorted(found.items())
    ]


def _why(backend: str) -> str:
    """The registry names no baseline ("") for a dispatch-bound loop; a backend that times
    no product of its own has none to offer."""
    entry = BACKENDS.get(backend)
    if entry is not None and entry.product_of == "":
        return "dispatch-bound: its per-step dispatch, not its FLOPs, sets its time"
    return "its backend times no product of its own (forward only)"


def efficiency(table: list[dict], machine: dict[str, Any]) -> list[dict[str, Any]]:
    """Achieved GFLOP/s per case, its share of the machine's best measured product (same
    device, dtype and threads) and of the theoretical peak when the environment states it."""
    out = []
    for row in table:
        if row["mode"] in ("peak", "bandwidth") or not row["flops"]:
            continue
        peak = machine["peaks"].get((row["machine"], row["device"], row["dtype"], row["threads"]))
        achieved = row["flops"] / row["median"]
        theory = peak.theoretical if peak else None
        out.append(
            {
                **row,
                "gflops": achieved / 1e9,
                "peak": peak,
                "fraction_of_peak": achieved / peak.flops if peak else None,
                "fraction_of_theoretical": achieved / theory if theory else None,
            }
        )
    return out


def held_penalties(penalty_rows: list[dict[str, Any]], machine: str) -> list[dict[str, Any]]:
    """The penalties on `machine` that are penalties: a recurrence (T > 1) that no product
    baseline beats (those are inconsistencies)."""
    return [
        p
        for p in penalty_rows
        if p["machine"] == machine
        and p["steps"] > 1
        and p["best_penalty"] >= 1
        and p["penalty"] >= 1
    ]


def settled(penalty_rows: list[dict[str, Any]], machine: str) -> tuple[str, list[dict]] | None:
    """The penalties the answer and the findings quote on `machine`: the held ones whose
    interval against the best product stays above 1; from the headline backend where it has
    them, else the backend with the most. None: no such case."""
    held = [p for p in held_penalties(penalty_rows, machine) if p["best_penalty_ci"][1] > 1]
    if not held:
        return None
    counts: dict[str, int] = {}
    for p in held:
        counts[p["backend"]] = counts.get(p["backend"], 0) + 1
    backend = max(counts, key=lambda t: (t in HEADLINE, counts[t]))
    return backend, [p for p in held if p["backend"] == backend]
