"""The harness checks itself: the timer's resolution, the timing loop's own cost against a 1 ms
call, and run-to-run precision: the ratio NumPy / torch on the standard LSTM case over several
separate runs (fresh worker processes each time) must stay within +-5% of its mean.

A run's ratio is the median over rounds of NumPy's round / torch's round: the two rounds of a
pair run back to back, so a drift in machine speed cancels in each pair. The ratio of the two
medians is recorded beside it."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from harness import registry
from harness.bench import engine, group
from harness.bench.case import BenchCase, make_case
from harness.bench.suites import TIMING_DEFAULTS
from harness.json_values import JsonObject

STANDARD: JsonObject = {"cell": "lstm", "batch": 32, "steps": 100, "input_size": 128, "hidden": 256}
PRECISION_TIMING = {**TIMING_DEFAULTS, "rounds": 15, "pause_s": 0.15, "min_round_s": 0.05}
TOLERANCE = 0.05


def standard_pair(threads: int = 2) -> list[BenchCase]:
    return [
        make_case(t, "forward", threads=threads, sweep="standard", **STANDARD)
        for t in (registry.REFERENCE, registry.HEADLINE[0])
    ]


def precision(runs: int = 3, threads: int = 2, progress=None) -> JsonObject:
    """Each run: both workers started afresh, 15 interleaved rounds; its ratio is the median
    of the paired rounds (NumPy's round over the torch round right after it), which cancels
    a drift shared by the pair; the ratio of the two medians is kept beside it."""
    out: JsonObject = {
        "case": STANDARD,
        "threads": threads,
        "timing": PRECISION_TIMING,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="rnnbench-selfcheck-") as logs:
        for number in range(runs):
            numpy_rec, torch_rec = group.measure_group(
                standard_pair(threads), PRECISION_TIMING, Path(logs)
            )
            for rec in (numpy_rec, torch_rec):
                if rec.status != "ok":
                    raise RuntimeError(f"selfcheck: {rec.id} {rec.status}: {rec.reason}")
            run: JsonObject = {
                "numpy_median_s": numpy_rec.derived().median,
                "torch_median_s": torch_rec.derived().median,
                "numpy_samples_s": list(numpy_rec.samples_s),
                "torch_samples_s": list(torch_rec.samples_s),
            }
            run["ratio_of_medians"] = run["numpy_median_s"] / run["torch_median_s"]
            run["ratio"] = statistics.median(
                a / b for a, b in zip(run["numpy_samples_s"], run["torch_samples_s"], strict=True)
            )
            out["runs"].append(run)
            if progress:
                progress(f"run {number + 1}/{runs}: NumPy / torch = {run['ratio']:.3f}")
    ratios = [r["ratio"] for r in out["runs"]]
    mean = statistics.fmean(ratios)
    out.update(
        ratio_mean=mean,
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        worst_deviation=max(abs(r / mean - 1) for r in ratios),
        tolerance=TOLERANCE,
    )
    out["within_tolerance"] = out["worst_deviation"] <= TOLERANCE
    return out


def run_all(runs: int = 3, progress=None) -> JsonObject:
    timer = engine.selfcheck()
    return {
        "timer": timer,
        "loop_overhead_ok": timer["loop_overhead_fraction_of_1ms"] < 0.01,
        "precision": precision(runs, progress=progress),
    }


def format_report(result: JsonObject) -> str:
    t, p = result["timer"], result["precision"]
    lines = [
        f"timer resolution {t['timer_resolution_s'] * 1e9:.0f} ns; timing loop overhead "
        f"{t['loop_overhead_s'] * 1e9:.0f} ns per call = "
        f"{100 * t['loop_overhead_fraction_of_1ms']:.4f}% "
        f"of a 1 ms call ({'ok' if result['loop_overhead_ok'] else 'OVER 1%'})",
        f"standard case LSTM B=32 T=100 I=128 H=256 float32, {p['threads']} threads, "
        f"{p['timing']['rounds']} interleaved rounds per run, fresh workers each run:",
    ]
    for n, run in enumerate(p["runs"], 1):
        lines.append(
            f"  run {n}: NumPy {run['numpy_median_s'] * 1e3:.2f} ms, torch "
            f"{run['torch_median_s'] * 1e3:.2f} ms, "
            f"NumPy / torch {run['ratio']:.3f} (median of paired rounds; "
            f"ratio of medians {run['ratio_of_medians']:.3f})"
        )
    verdict = "within" if p["within_tolerance"] else "OUTSIDE"
    lines.append(
        f"  ratio {p['ratio_mean']:.3f} (range {p['ratio_min']:.3f}..{p['ratio_max']:.3f}"
        f"): worst deviation {100 * p['worst_deviation']:.1f}%, {verdict} "
        f"+-{100 * p['tolerance']:.0f}%"
    )
    return "\n".join(lines)
