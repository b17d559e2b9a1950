"""The report's "Your model" section, one per (machine, model): what each backend takes, the
cost of one step, the recurrence penalty and the parallel-in-time verdict on the model's own
weights, each figure with its 95% interval."""

from __future__ import annotations

import dataclasses

from harness.analysis.fits import Fit
from harness.analysis.measures import Analysis
from harness.analysis.own_model import OwnModel
from harness.analysis.parallel_in_time import TimedSolve, predicted_verdict
from harness.analysis.penalty import PenaltyRow
from harness.analysis.prediction import ComparedSolve, compared
from harness.analysis.rows import TimedRow
from harness.escape import for_markdown_code
from harness.json_values import JsonObject
from harness.markdown import Column, field, fields, table_of
from harness.stats import format_interval, format_ratio, format_seconds


def sections(result: Analysis) -> list[tuple[str, str]]:
    """One section per model; a trained example's initial weights are shown only beside its
    trained ones (the trained examples' section)."""
    from harness.bench.model_suite import model_name

    initials = {model_name(t.trained.files.initial) for t in result.trained}
    return [(_title(m), _body(m)) for m in result.models if m.model not in initials]


def _title(m: OwnModel) -> str:
    return f"Your model: {m.model} on {m.machine}"


def describe(spec: JsonObject) -> str:
    if not spec:
        return ""
    direction = "bidirectional" if spec.get("bidirectional") else "one direction"
    head = spec.get("head")
    extra = [f"head {head['units']} ({head['activation']})"] if head else []
    extra += [k for k in ("peepholes", "input_forget") if spec.get(k)]
    if spec.get("linear_before_reset") is False:
        extra.append("linear_before_reset=0")
    if spec.get("clip"):
        extra.append(f"clip {spec['clip']:g}")
    return (
        f"{spec['cell'].upper()}, I={spec['input_size']}, H={spec['hidden_size']}, "
        f"{spec['num_layers']} layer(s), {direction}, {spec['dtype']}"
        + "".join(f", {e}" for e in extra)
    )


def _body(m: OwnModel) -> str:
    parts = [
        f"{for_markdown_code(m.file)}: {describe(m.spec)}. Every backend below was proven "
        "equal to the NumPy reference on the file's weights before it was timed; medians of "
        "interleaved rounds with their 95% interval.",
        "",
        _headline(m),
        "",
        "**Runtimes** (forward, fastest first at each shape):",
        "",
        _backends(m.backends),
    ]
    if m.fits:
        parts += ["", "**Cost of one step** (latency = a + b*T):", "", _fits(m.fits)]
    if m.penalties:
        parts += [
            "",
            "**Recurrence penalty** (the model's time over its FLOPs as one product):",
            "",
            _penalties(m.penalties),
        ]
    if m.parallel_in_time:
        parts += [
            "",
            "**Parallel in time on its own weights** (Newton and quasi-Newton iterations over "
            "all T, timed beside the torch step loop they replace):",
            "",
            _solves(m.parallel_in_time),
        ]
    return "\n".join(parts)


def _headline(m: OwnModel) -> str:
    """One sentence per batch size at the longest T: the fastest backend and the slowest."""
    lines = []
    rows = m.backends
    for threads, batch in sorted({(r.threads, r.batch) for r in rows}):
        at = [r for r in rows if (r.threads, r.batch) == (threads, batch)]
        T = max(r.steps for r in at)
        longest = sorted((r for r in at if r.steps == T), key=lambda r: r.median)
        fastest, slowest = longest[0], longest[-1]
        lines.append(
            f"- B={batch}, T={T}, {threads} thread(s): fastest **{fastest.backend}** "
            f"{format_interval(fastest.median_ci)} ({format_seconds(fastest.median / T)} "
            f"a step); slowest {slowest.backend} {format_interval(slowest.median_ci)}."
        )
    return "\n".join(lines)


def _backends(rows: list[TimedRow]) -> str:
    columns = fields("backend", "batch", "steps", "threads") + [
        ("implementation", field("impl_class")),
        ("median [95% interval]", lambda r: format_interval(r.median_ci)),
        ("per step", lambda r: format_seconds(r.median / r.steps)),
    ]
    return table_of(columns, rows)


def _fits(fits: list[Fit]) -> str:
    columns = fields("backend", "batch", "threads") + [
        ("a (fixed cost)", lambda f: format_interval(f.a_ci)),
        ("b (per step)", lambda f: format_interval(f.b_ci)),
        ("R^2", lambda f: f"{f.r2:.3f}"),
        ("T measured", lambda f: ",".join(str(p[0]) for p in f.points)),
    ]
    return table_of(columns, fits)


def _penalties(rows: list[PenaltyRow]) -> str:
    columns = fields("backend", "batch", "steps", "threads") + [
        ("RNN", lambda p: format_interval(p.median_ci)),
        ("same FLOPs as one product", lambda p: format_interval(p.gemm_median_ci)),
        ("penalty [95% interval]", lambda p: format_ratio(p.penalty_ci)),
    ]
    return table_of(columns, sorted(rows, key=lambda p: (p.backend, p.batch, p.steps)))


def _solves(rows: list[TimedSolve]) -> str:
    """The timed solves, each beside its prediction: the error and, beyond 2x, the term that
    missed (harness/analysis/prediction.py)."""
    judged = {id(c.solve): c for c in compared(rows)}
    shown = [_Judged(t, judged.get(id(t))) for t in rows]
    columns: list[Column] = [
        ("mode", lambda j: j.t.mode),
        ("batch", lambda j: j.t.batch),
        ("steps", lambda j: j.t.steps),
        ("LLE", lambda j: f"{j.t.lle:+.3f}" if j.t.lle is not None else ""),
        ("iterations", lambda j: j.t.iterations),
        ("work x", lambda j: f"{j.t.work_multiplier:.3g}"),
        ("solve", lambda j: format_interval(j.t.median_ci)),
        ("step loop", lambda j: format_interval(j.t.step_loop_ci)),
        ("solve / step loop", lambda j: format_ratio(j.t.time_ratio_ci)),
        ("verdict", lambda j: j.t.verdict),
        ("predicted", lambda j: predicted_verdict(j.t)),
        ("predicted ratio", lambda j: f"{j.c.predicted_ratio:.3g}x" if j.c else ""),
        ("error", lambda j: f"{j.c.error:.2f}x" if j.c else ""),
        ("missed by", lambda j: (j.c.missed or "") if j.c else ""),
    ]
    return table_of(columns, shown)


@dataclasses.dataclass(frozen=True)
class _Judged:
    """A timed solve and, where it carried a prediction, its comparison with it."""

    t: TimedSolve
    c: ComparedSolve | None
