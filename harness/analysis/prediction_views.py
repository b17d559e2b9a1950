"""The report's predicted-against-measured part of the parallel-in-time section: one table (each
timed case's predicted and measured ratio, the error, and the term that missed), the break-even
T predicted against measured, the iteration law with its residuals, and one plot."""

from __future__ import annotations

from collections.abc import Sequence

from harness.analysis.prediction import (
    MEDIAN_WITHIN,
    SHARE_WITHIN,
    WITHIN,
    BreakEven,
    ComparedSolve,
    HeldOut,
    LawOfSweep,
    PredictionAnalysis,
)
from harness.analysis.solve_records import SoloPrediction, SoloSolve
from harness.markdown import Column, field, fields, table_of
from harness.records.parallel_in_time import IterationLaw
from harness.records.prediction import PredictedSolve
from harness.stats import format_ratio

CAPTION = "Predicted against measured: solve time over the step loop's"
NOTE = (
    "Predicted before each solve ran (harness/predict): iterations from the model's largest "
    "Lyapunov exponent by the sweep's iteration law, the work they cost, one iteration's time "
    "and the step loop's probed on the machine at the case's shape. Held out: every case below "
    "(the law is fitted on the sweep's counted iterations alone; no timing of a case enters its "
    "prediction). Error = predicted ratio / measured ratio; where it is beyond {within:g}x, "
    "the term that missed is named with its two values (iterations counted; an iteration's "
    "time measured as (solve - setup) / iterations; the step loop's median)."
)


def markdown(found: PredictionAnalysis | None) -> list[str]:
    """The parts of the section; none without predictions or laws."""
    if not found:
        return []
    parts = []
    if found.rows and found.summary:
        parts += [NOTE.format(within=WITHIN), _summary(found.summary), table(found.rows)]
    else:
        parts.append("No timed case among these results carries a prediction.")
    crossings = [b for b in found.break_even if b.measured or b.predicted]
    if found.break_even:
        parts += [
            "Break-even T, predicted against measured (predicted: the median of the break-evens "
            "the series' cases predicted, each before its run from its own probe; each in "
            "brackets, shortest T first):",
            break_even_table(found.break_even),
        ]
        if not crossings:
            parts.append("Neither measured nor predicted: no series wins from any T.")
    for law in found.laws:
        parts += [_law_text(law), laws_table(law.law.laws)]
    return parts


SOLO_NOTE = (
    "Single solves (`rnnbench parallel-in-time --json`): each timed against its framework's "
    "step loop in interleaved rounds in one process (a microbenchmark, not the engine), its "
    "verdict from the ratio's 95% interval, beside the prediction made before it ran."
)
PREDICTED_NOTE = (
    "Predictions alone (`rnnbench parallel-in-time --predict --json`): nothing was solved."
)


def _lle(lle: float | None) -> str:
    return "" if lle is None else f"{lle:+.3f}"


def solo(ran: Sequence[SoloSolve], predicted: Sequence[SoloPrediction]) -> list[str]:
    parts = []
    where: list[Column] = fields("source", "cell") + [
        ("H", field("hidden")),
        ("B", field("batch")),
        ("T", field("steps")),
        ("backend", field("backend")),
        ("dtype", field("dtype")),
        ("method", field("method")),
        ("LLE", lambda r: _lle(r.lle)),
    ]
    if ran:
        columns = where + [
            ("iterations", lambda r: _iterations(r.iterations)),
            ("solve / step loop", lambda r: format_ratio(r.ratio_ci) if r.ratio_ci else ""),
            ("verdict", field("verdict")),
            ("predicted", lambda r: _predicted_text(r.prediction)),
        ]
        parts += [SOLO_NOTE, table_of(columns, ran)]
    if predicted:
        columns = where + [
            ("iterations", lambda r: _iterations(r.solve.iterations)),
            ("solve / step loop", lambda r: _times(r.solve.ratio)),
            ("verdict", lambda r: r.solve.verdict),
            ("break-even T", lambda r: _break_even(r.solve)),
        ]
        parts += [PREDICTED_NOTE, table_of(columns, predicted)]
    return parts


def _iterations(count: int | None) -> str:
    return "none" if count is None else str(count)


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.3g}x"


def _predicted_text(p: PredictedSolve | None) -> str:
    if p is None:
        return "not predicted"
    if p.ratio is None:
        return p.verdict
    return f"{p.verdict} ({p.ratio:.3g}x, {p.iterations} iterations)"


def _summary(s: HeldOut) -> str:
    agree = (
        f" The measured verdict settles {s.verdicts_told} of {s.cases} cases; the "
        f"predicted verdict agrees on {s.verdicts_agree} of them."
    )
    met = "met" if s.met else "not met"
    return (
        f"{s.cases} held-out cases: {s.within_2x:.0%} within {WITHIN:g}x of the measured "
        f"ratio, median |log error| {s.median_abs_log_error:.3f} (a factor of "
        f"{s.median_error_factor:.2f}); the target ({SHARE_WITHIN:.0%} within {WITHIN:g}x, "
        f"median within log {MEDIAN_WITHIN:g}) is {met}." + agree
    )


def table(rows: Sequence[ComparedSolve]) -> str:
    columns: list[Column] = [
        ("machine", lambda r: r.solve.machine),
        ("backend", lambda r: r.solve.backend),
        ("cell", lambda r: r.solve.cell),
        ("mode", lambda r: r.solve.mode),
        ("model", lambda r: r.solve.model),
        ("B", lambda r: r.solve.batch),
        ("T", lambda r: r.solve.steps),
        ("H", lambda r: r.solve.hidden),
        ("LLE", lambda r: _lle(r.solve.lle)),
        (
            "iterations predicted / counted",
            lambda r: f"{r.predicted_iterations} / {r.solve.iterations}",
        ),
        ("predicted", lambda r: f"{r.predicted_ratio:.3g}x"),
        ("measured", lambda r: format_ratio(r.solve.time_ratio_ci)),
        ("error", lambda r: f"{r.error:.2f}x"),
        ("verdict (predicted)", lambda r: f"{r.solve.verdict} ({r.predicted.verdict})"),
        ("missed by", lambda r: r.missed or ""),
    ]
    return table_of(columns, rows)


def break_even_table(rows: Sequence[BreakEven]) -> str:
    columns = fields("machine", "backend", "cell", "mode", "model") + [
        ("B", field("batch")),
        ("H", field("hidden")),
        ("T timed", lambda r: ", ".join(map(str, r.steps))),
        (
            "measured",
            lambda r: ("at most " if r.at_most else "") + _steps(r.measured, "no win timed"),
        ),
        ("predicted (each case's)", _predicted_each),
        ("predicted / measured", lambda r: "" if r.ratio is None else f"{r.ratio:.2f}x"),
        ("within 2x", lambda r: "" if r.ratio is None else ("yes" if r.within else "no")),
    ]
    return table_of(columns, rows)


def _break_even(s: PredictedSolve) -> str:
    start = _steps(s.break_even_steps, "none up to 65536")
    if s.break_even_steps is None or s.wins_up_to_steps is None:
        return start
    return f"{start} (wins up to {s.wins_up_to_steps:.0f})"


def _predicted_each(r: BreakEven) -> str:
    median = _steps(r.predicted, "none up to 65536")
    if len(r.predicted_each) < 2:
        return median
    return f"{median} ({', '.join(_steps(p, 'none') for p in r.predicted_each)})"


def _steps(value: float | None, none: str) -> str:
    return none if value is None else f"{value:.0f}"


def _law_text(found: LawOfSweep) -> str:
    law = found.law
    parts = []
    for role in ("fit", "held out"):
        r = law.residuals.get(role)
        if r is not None and r.points:
            parts.append(
                f"{role}: {r.points} points, median |ln(predicted / counted)| "
                f"{r.median_abs_log_error or 0:.3f}, worst {r.worst_abs_log_error or 0:.3f}, "
                f"{r.within_2x or 0:.0%} within 2x"
            )
    return (
        f"Iteration law (sweep on {found.machine} at commit "
        f"{(found.commit or 'unrecorded')[:10]}; fitted on {law.fit_on}, held out: "
        f"{law.held_out}): " + "; ".join(parts) + "."
    )


def laws_table(laws: Sequence[IterationLaw]) -> str:
    columns = fields("cell", "method") + [
        ("k =", field("formula")),
        ("points", field("n")),
        ("rms ln error", lambda r: f"{r.rms:.3f}"),
        ("worst", lambda r: f"{r.worst:.3f}"),
    ]
    return table_of(columns, laws)


def predicted_vs_measured(rows: Sequence[ComparedSolve]):
    """Measured ratio (with its interval) against the predicted, log-log, the 2x band shaded."""
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 6))
    marks = {"newton": "o", "quasi-newton": "s"}
    for method, mark in marks.items():
        at = [r for r in rows if r.solve.mode == method]
        if not at:
            continue
        x = [r.predicted_ratio for r in at]
        y = [r.solve.time_ratio_ci[0] for r in at]
        spread = [
            [r.solve.time_ratio_ci[0] - r.solve.time_ratio_ci[1] for r in at],
            [r.solve.time_ratio_ci[2] - r.solve.time_ratio_ci[0] for r in at],
        ]
        axis.errorbar(x, y, yerr=spread, fmt=mark, label=method, capsize=2, lw=0.8)
    values = [v for r in rows for v in (r.predicted_ratio, *r.solve.time_ratio_ci) if v > 0]
    low, high = min(values) / 1.5, max(values) * 1.5
    line = [low, high]
    axis.plot(line, line, "k-", lw=0.8, label="predicted = measured")
    axis.fill_between(line, [v / WITHIN for v in line], [v * WITHIN for v in line], color="0.9")
    axis.axhline(1, color="k", lw=0.5, ls=":")
    axis.axvline(1, color="k", lw=0.5, ls=":")
    axis.set(xscale="log", yscale="log", xlim=line, ylim=line)
    axis.set(xlabel="predicted solve / step loop", ylabel="measured solve / step loop")
    axis.set_title(f"Predicted against measured (shaded: within {WITHIN:g}x; left of 1: wins)")
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    return fig
