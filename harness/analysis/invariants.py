"""The analysis checks its own limits. A limit is a limit: a measurement above the machine's
compute peak, faster than its roofline bound, or faster than the same FLOPs as one product
means the limit is wrong (a probe on a slow kernel, a product into a fresh allocation, the
wrong memory level), so it is reported as an inconsistency with its likely cause, never as a
share over 100% or a penalty under 1."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harness import registry
from harness.analysis.penalty import EfficiencyRow, PenaltyRow
from harness.analysis.roofline import RooflineRow
from harness.escape import for_markdown, for_markdown_code
from harness.machine.model import MachineModel, Peak, PeakKey
from harness.stats import format_ratio, format_seconds

ABOVE_PEAK = "above the measured peak"
ABOVE_THEORY = "above the theoretical peak"
BEATS_ROOFLINE = "faster than its roofline bound"
BEATS_BEST = "faster than the machine's best product of its FLOPs"
BEATS_OWN = "faster than its own backend's product of its FLOPs"
THEORY_CAUSE = (
    "the clock the environment reports is below the one the CPU ran at (a VM's /proc/cpuinfo "
    "shows the base clock; boost runs faster), or its ISA or core count is wrong, or the FLOP "
    "count overstates the work done"
)


@dataclasses.dataclass(frozen=True)
class Inconsistency:
    kind: str  # one of the constants above
    machine: str
    subject: str  # the case id or the fitted series
    measured: str  # what was measured against what limit, in numbers
    cause: str  # why the limit does not hold
    settled: bool = True  # the measurement's whole 95% interval is past the limit


def check(
    machine: MachineModel,
    efficiency: Sequence[EfficiencyRow],
    roofline: Sequence[RooflineRow],
    penalties: Sequence[PenaltyRow],
) -> list[Inconsistency]:
    """Every violated limit among an analysis's measures (measures.analyse)."""
    found = []
    for row in efficiency:
        found += _peaks(row, machine.openblas.get(row.machine, ""))
    found += _measured_peaks(machine.peaks, found)
    found += [_roofline(r) for r in roofline if r.times_bound < 1]
    for penalty in penalties:
        found += _penalty(penalty)
    return found


def _measured_peaks(peaks: dict[PeakKey, Peak], found: list[Inconsistency]) -> list[Inconsistency]:
    """A best product (a peak probe, which efficiency does not rate) above the theoretical
    peak the environment states: that figure is no bound."""
    seen = {(i.kind, i.subject) for i in found}
    out = []
    for (machine, _, _, _), peak in sorted(peaks.items()):
        if not peak.theoretical or peak.flops <= peak.theoretical:
            continue
        if (ABOVE_THEORY, peak.id) in seen:
            continue
        measured = (
            f"{_gflops(peak.flops)} against {_gflops(peak.theoretical)} ({peak.theoretical_note})"
        )
        out.append(Inconsistency(ABOVE_THEORY, machine, peak.id, measured, THEORY_CAUSE))
    return out


def _gflops(value: float) -> str:
    return f"{value / 1e9:.0f} GFLOP/s"


def _peaks(row: EfficiencyRow, openblas: str) -> list[Inconsistency]:
    out: list[Inconsistency] = []
    peak, flops = row.peak, row.flops or 0.0
    if peak is None:
        return out
    achieved = flops / row.median
    slowest = flops / row.median_ci[2]  # the rate at its interval's slow end
    if row.fraction_of_peak is not None and row.fraction_of_peak > 1:
        cause = (
            f"peak probe slower than the workload: the best product measured ({peak.backend}, "
            f"{peak.size}) is not the machine's best GEMM"
        )
        if peak.backend == registry.REFERENCE and openblas:  # its products are NumPy's BLAS
            cause += f" ({openblas})"
        if row.mode == "train":
            cause += "; or the training FLOP count includes products this implementation skips"
        measured = f"{_gflops(achieved)} against {_gflops(peak.flops)}"
        out.append(
            Inconsistency(ABOVE_PEAK, row.machine, row.id, measured, cause, slowest > peak.flops)
        )
    if (
        row.fraction_of_theoretical is not None
        and row.fraction_of_theoretical > 1
        and peak.theoretical is not None
    ):
        measured = (
            f"{_gflops(achieved)} against {_gflops(peak.theoretical)} ({peak.theoretical_note})"
        )
        out.append(
            Inconsistency(
                ABOVE_THEORY,
                row.machine,
                row.id,
                measured,
                THEORY_CAUSE,
                slowest > peak.theoretical,
            )
        )
    return out


def _series(roof: RooflineRow) -> str:
    fit = roof.fit
    return (
        f"{fit.backend} {fit.cell} B={fit.batch} I={fit.input_size} H={fit.hidden} "
        f"L={fit.layers} {fit.dtype} th{fit.threads} (slope b of a + b*T)"
    )


def _roofline(roof: RooflineRow) -> Inconsistency:
    bound = roof.bound
    step, limit = format_seconds(roof.step_s), format_seconds(bound.bound_s)
    measured = f"{step} per step against a {bound.limited_by}-bound {limit}"
    if bound.limited_by == "compute":
        peak = roof.peak
        rate = _gflops(bound.step_flops / roof.step_s)
        measured += (
            f" (the step at {rate}, the best product measured {_gflops(peak.flops)}: "
            f"{peak.backend}, {peak.size})"
        )
        cause = "the peak probe is slower than the workload: it is not the machine's best GEMM"
    else:
        measured += (
            f" (working set {bound.working_set / 2**10:.0f} KiB, placed in {bound.level} at "
            f"{(bound.bandwidth or 0) / 1e9:.1f} GB/s: {bound.memory_note})"
        )
        cause = (
            "the step's working set is served faster than the copy probe of its level says: "
            "from a faster level than the cache sizes say, or at a read bandwidth above what a "
            "copy (read + write) measures"
        )
    settled = roof.step_ci[2] < bound.bound_s
    return Inconsistency(BEATS_ROOFLINE, roof.fit.machine, _series(roof), measured, cause, settled)


def _penalty(row: PenaltyRow) -> list[Inconsistency]:
    out = []
    flops = row.flops or 0.0
    rnn = flops / row.median
    if row.best_penalty < 1:
        best = flops / row.best_median_ci[0]
        out.append(
            Inconsistency(
                BEATS_BEST,
                row.machine,
                row.id,
                f"{format_ratio(row.best_penalty_ci)} of {row.best_backend}'s product "
                f"(the product at {_gflops(best)}, the RNN at {_gflops(rnn)})",
                "no product baseline measured is the machine's best GEMM for these FLOPs: the "
                "RNN's own kernel runs them faster",
                row.best_penalty_ci[2] < 1,
            )
        )
    if row.penalty < 1:
        own = flops / row.gemm_median
        out.append(
            Inconsistency(
                BEATS_OWN,
                row.machine,
                row.id,
                f"{format_ratio(row.penalty_ci)} of {row.baseline}'s product "
                f"(the product call at {_gflops(own)}, the RNN's products at {_gflops(rnn)})",
                "the backend's one product call is not its fastest way to do these FLOPs: its "
                "RNN kernel runs them faster (another blocking or threading of the same work)",
                row.penalty_ci[2] < 1,
            )
        )
    return out


def flagged(found: list[Inconsistency]) -> set[tuple[str, str, str]]:
    """(kind, machine, subject) of each inconsistency: what the tables show as inconsistent."""
    return {(i.kind, i.machine, i.subject) for i in found}


def markdown(found: list[Inconsistency]) -> str:
    if not found:
        return (
            "None: no measurement beats its compute peak, its roofline bound or the best "
            "product of its FLOPs."
        )
    settled = sum(i.settled for i in found)
    lines = [
        f"{len(found)} {'measurement beats' if len(found) == 1 else 'measurements beat'} a limit "
        f"drawn from these results; {settled} by more than its 95% interval (that limit is "
        "wrong, not the measurement), the rest within it (the limit is reached, not settled "
        "as wrong). The tables show each as inconsistent.",
        "",
    ]
    by_cause: dict[tuple[str, str], list[Inconsistency]] = {}
    for i in found:
        by_cause.setdefault((i.kind, i.cause), []).append(i)
    for (kind, cause), cases in by_cause.items():
        lines += [f"**{kind}** ({len(cases)}). Cause: {cause}.", ""]
        lines += [
            f"- {for_markdown_code(i.subject)} on {for_markdown(i.machine)}: {i.measured}"
            + ("" if i.settled else " (within its interval)")
            for i in cases
        ]
        lines.append("")
    return "\n".join(lines).rstrip()
