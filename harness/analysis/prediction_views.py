"""The report's predicted-against-measured part of the parallel-in-time section: one table (each
timed case's predicted and measured ratio, the error, and the term that missed), the break-even
T predicted against measured, the iteration law with its residuals, and one plot."""

from __future__ import annotations

from typing import Any

from harness.analysis.prediction import MEDIAN_WITHIN, SHARE_WITHIN, WITHIN
from harness.markdown import field, fields, table_of
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


def markdown(found: dict[str, Any] | None) -> list[str]:
    """The parts of the section; none without predictions or laws."""
    if not found:
        return []
    parts = []
    if found["rows"]:
        parts += [NOTE.format(within=WITHIN), _summary(found["summary"]), table(found["rows"])]
    else:
        parts.append("No timed case among these results carries a prediction.")
    crossings = [b for b in found["break_even"] if b["measured"] or b["predicted"]]
    if found["break_even"]:
        parts += [
            "Break-even T, predicted against measured:",
            break_even_table(found["break_even"]),
        ]
        if not crossings:
            parts.append("Neither measured nor predicted: no series wins from any T.")
    for law in found["laws"]:
        parts += [_law_text(law), laws_table(law)]
    return parts


SOLO_NOTE = (
    "Single solves (`rnnbench parallel-in-time --json`): each timed against its framework's "
    "step loop in interleaved rounds in one process (a microbenchmark, not the engine), its "
    "verdict from the ratio's 95% interval, beside the prediction made before it ran."
)
PREDICTED_NOTE = (
    "Predictions alone (`rnnbench parallel-in-time --predict --json`): nothing was solved."
)


def solo(ran: list[dict[str, Any]], predicted: list[dict[str, Any]]) -> list[str]:
    parts = []
    where = fields("source", "cell") + [
        ("H", field("hidden")),
        ("B", field("batch")),
        ("T", field("steps")),
        ("backend", field("backend")),
        ("dtype", field("dtype")),
        ("method", field("method")),
        ("LLE", lambda r: "" if r.get("lle") is None else f"{r['lle']:+.3f}"),
    ]
    if ran:
        columns = where + [
            ("iterations", lambda r: "none" if r["iterations"] is None else r["iterations"]),
            ("solve / step loop", lambda r: format_ratio(r["ratio_ci"]) if r["ratio_ci"] else ""),
            ("verdict", field("verdict")),
            ("predicted", lambda r: _predicted_text(r.get("prediction"))),
        ]
        parts += [SOLO_NOTE, table_of(columns, ran)]
    if predicted:
        columns = where + [
            ("iterations", lambda r: "none" if r["iterations"] is None else r["iterations"]),
            ("solve / step loop", lambda r: "" if r["ratio"] is None else f"{r['ratio']:.3g}x"),
            ("verdict", field("verdict")),
            ("break-even T", lambda r: _steps(r["break_even_steps"], "none up to 65536")),
        ]
        parts += [PREDICTED_NOTE, table_of(columns, predicted)]
    return parts


def _predicted_text(p: dict[str, Any] | None) -> str:
    if not p:
        return "not predicted"
    if p["ratio"] is None:
        return p["verdict"]
    return f"{p['verdict']} ({p['ratio']:.3g}x, {p['iterations']} iterations)"


def _summary(s: dict[str, Any]) -> str:
    agree = (
        f" The measured verdict settles {s['verdicts_told']} of {s['cases']} cases; the "
        f"predicted verdict agrees on {s['verdicts_agree']} of them."
    )
    met = "met" if s["met"] else "not met"
    return (
        f"{s['cases']} held-out cases: {s['within_2x']:.0%} within {WITHIN:g}x of the measured "
        f"ratio, median |log error| {s['median_abs_log_error']:.3f} (a factor of "
        f"{s['median_error_factor']:.2f}); the target ({SHARE_WITHIN:.0%} within {WITHIN:g}x, "
        f"median within log {MEDIAN_WITHIN:g}) is {met}." + agree
    )


def table(rows: list[dict[str, Any]]) -> str:
    columns = fields("machine", "backend", "cell", "mode") + [
        ("model", lambda r: r.get("model") or ""),
        ("B", field("batch")),
        ("T", field("steps")),
        ("H", field("hidden")),
        ("LLE", lambda r: "" if r.get("lle") is None else f"{r['lle']:+.3f}"),
        (
            "iterations predicted / counted",
            lambda r: f"{r['predicted_iterations']} / {r['iterations']}",
        ),
        ("predicted", lambda r: f"{r['predicted_ratio']:.3g}x"),
        ("measured", lambda r: format_ratio(r["time_ratio_ci"])),
        ("error", lambda r: f"{r['error']:.2f}x"),
        ("verdict (predicted)", lambda r: f"{r['verdict']} ({r['prediction']['verdict']})"),
        ("missed by", lambda r: r["missed"] or ""),
    ]
    return table_of(columns, rows)


def break_even_table(rows: list[dict[str, Any]]) -> str:
    columns = fields("machine", "backend", "cell", "mode") + [
        ("model", lambda r: r.get("model") or ""),
        ("B", field("batch")),
        ("H", field("hidden")),
        ("T timed", lambda r: ", ".join(map(str, r["steps"]))),
        ("measured", lambda r: _steps(r["measured"], "no win timed")),
        ("predicted", lambda r: _steps(r["predicted"], "none up to 65536")),
        ("predicted / measured", lambda r: "" if r["ratio"] is None else f"{r['ratio']:.2f}x"),
    ]
    return table_of(columns, rows)


def _steps(value: float | None, none: str) -> str:
    return none if value is None else f"{value:.0f}"


def _law_text(law: dict[str, Any]) -> str:
    residuals = law["residuals"]
    parts = []
    for role in ("fit", "held out"):
        r = residuals.get(role) or {}
        if r.get("points"):
            parts.append(
                f"{role}: {r['points']} points, median |ln(predicted / counted)| "
                f"{r['median_abs_log_error']:.3f}, worst {r['worst_abs_log_error']:.3f}, "
                f"{r['within_2x']:.0%} within 2x"
            )
    return (
        f"Iteration law (sweep on {law['machine']} at commit "
        f"{(law['commit'] or 'unrecorded')[:10]}; fitted on {law['fit_on']}, held out: "
        f"{law['held_out']}): " + "; ".join(parts) + "."
    )


def laws_table(law: dict[str, Any]) -> str:
    columns = fields("cell", "method") + [
        ("k =", field("formula")),
        ("points", field("n")),
        ("rms ln error", lambda r: f"{r['rms']:.3f}"),
        ("worst", lambda r: f"{r['worst']:.3f}"),
    ]
    return table_of(columns, law["laws"])


def predicted_vs_measured(rows: list[dict[str, Any]]):
    """Measured ratio (with its interval) against the predicted, log-log, the 2x band shaded."""
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 6))
    marks = {"newton": "o", "quasi-newton": "s"}
    for method, mark in marks.items():
        at = [r for r in rows if r["mode"] == method]
        if not at:
            continue
        x = [r["predicted_ratio"] for r in at]
        y = [r["time_ratio_ci"][0] for r in at]
        spread = [
            [r["time_ratio_ci"][0] - r["time_ratio_ci"][1] for r in at],
            [r["time_ratio_ci"][2] - r["time_ratio_ci"][0] for r in at],
        ]
        axis.errorbar(x, y, yerr=spread, fmt=mark, label=method, capsize=2, lw=0.8)
    values = [v for r in rows for v in (r["predicted_ratio"], *r["time_ratio_ci"]) if v > 0]
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
