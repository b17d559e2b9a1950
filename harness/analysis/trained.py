"""The trained examples (benchmarks/trained/train.py): what training did to each model, read
from its training record (kind "rnnbench-training"), its parity record (`parity --model
TRAINED --against EXPORT --json`) and the `bench --model` runs of its initial and trained
weights. The before/after pairing is the training record's: its files say which initial file
each trained model started from."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from harness.analysis.own_model import OwnModel
from harness.analysis.parallel_in_time import TimedSolve
from harness.escape import for_markdown
from harness.markdown import table_of
from harness.records.parity import ParityRecord
from harness.records.training import TrainedModel, TrainingDocument
from harness.stats import format_interval, format_ratio

TITLE = "Trained examples: what learning did to parity, speed and parallel in time"


@dataclasses.dataclass(frozen=True)
class Pair:
    """A parallel-in-time timing at one (method, B, T) before and after training."""

    mode: str
    batch: int
    steps: int
    before: TimedSolve
    after: TimedSolve


@dataclasses.dataclass(frozen=True)
class TrainedEntry:
    """One trained model: its training, its parity record (None: not run) and its timings
    (None: not timed) with the before/after pairs."""

    trained: TrainedModel
    parity: ParityRecord | None
    pairs: list[Pair]
    timed: OwnModel | None


def analyse(
    trainings: Sequence[TrainingDocument],
    models: Sequence[OwnModel],
    parities: Sequence[ParityRecord],
) -> list[TrainedEntry]:
    """One entry per trained model: its training, parity and before/after rows."""
    from harness.bench.model_suite import model_name

    by_name = {m.model: m for m in models}
    parity_of = {Path(p.model.path).name: p for p in parities if p.model is not None}
    out = []
    for doc in trainings:
        for m in doc.models:
            trained = by_name.get(model_name(m.files.trained))
            initial = by_name.get(model_name(m.files.initial))
            out.append(
                TrainedEntry(
                    m, parity_of.get(Path(m.files.trained).name), _pairs(initial, trained), trained
                )
            )
    return out


def _pairs(initial: OwnModel | None, trained: OwnModel | None) -> list[Pair]:
    """Parallel-in-time rows at the same (method, B, T) before and after training."""
    if initial is None or trained is None:
        return []
    before = {(p.mode, p.batch, p.steps): p for p in initial.parallel_in_time}
    return [
        Pair(p.mode, p.batch, p.steps, before[k], p)
        for p in trained.parallel_in_time
        if (k := (p.mode, p.batch, p.steps)) in before
    ]


def summary(entry: TrainedEntry) -> str:
    """What training did to the LLE and the iterations, at the longest T both runs timed."""
    pairs = entry.pairs
    if not pairs:
        return ""
    T = max(p.steps for p in pairs)
    at = {p.mode: p for p in pairs if p.steps == T}
    any_pair = next(iter(at.values()))
    before, after = any_pair.before.lle, any_pair.after.lle
    lle = f"LLE {_lle(before)} -> {_lle(after)} per step"
    counts = "; ".join(
        f"{mode} {p.before.iterations} -> {p.after.iterations} iterations "
        f"(solve / step loop {format_ratio(p.before.time_ratio_ci)} -> "
        f"{format_ratio(p.after.time_ratio_ci)})"
        for mode, p in sorted(at.items())
    )
    closer = before is not None and after is not None and after > before
    direction = "closer to" if closer else "further from"
    return (
        f"Training moved the largest Lyapunov exponent {direction} 0 ({lle}) at T={T}, B=1: "
        f"{counts}."
    )


def _lle(value: float | None) -> str:
    return "not finite" if value is None else f"{value:+.3f}"


def markdown(entries: list[TrainedEntry]) -> str:
    parts = [
        "Each model is trained by `benchmarks/trained/train.py` on data an installed package "
        "ships; the initial weights are kept, so that the parallel-in-time verdict is shown "
        "before and after learning (iterations and LLE counted on B=1 sequences, solve and step "
        "loop timed in one interleaved group).",
        "",
        table_of(
            [
                ("model", lambda e: e.trained.name),
                ("what it learned", lambda e: f"{e.trained.model}: {e.trained.task}"),
                ("epochs", lambda e: e.trained.epochs),
                ("validation loss", _val),
                (
                    "baseline",
                    lambda e: f"{e.trained.baseline.val_loss:.4f} ({e.trained.baseline.name})",
                ),
                ("parity of file and export", _parity),
            ],
            entries,
        ),
    ]
    for entry in entries:
        if not entry.pairs:
            continue
        name = for_markdown(entry.trained.name)
        parts += ["", f"**{name}**: {summary(entry)}", "", _pairs_table(entry.pairs)]
    return "\n".join(parts)


def _val(e: TrainedEntry) -> str:
    text = f"{e.trained.val_loss:.4f}"
    if e.trained.val_accuracy is not None:
        text += f" (accuracy {100 * e.trained.val_accuracy:.1f}%)"
    return text


def _parity(e: TrainedEntry) -> str:
    record = e.parity
    if record is None:
        return "not run"
    results = record.results
    checked = [r for r in results if r.status in ("passed", "failed", "error")]
    failed = [r for r in checked if r.status != "passed"]
    skipped = len(results) - len(checked)
    verdict = "passed" if record.passed else "FAILED"
    return f"{verdict}: {len(checked) - len(failed)} of {len(checked)} checks ({skipped} skipped)"


def _pairs_table(pairs: list[Pair]) -> str:
    columns = [
        ("method", lambda p: p.mode),
        ("T", lambda p: p.steps),
        ("LLE", lambda p: f"{_lle(p.before.lle)} -> {_lle(p.after.lle)}"),
        ("iterations", lambda p: f"{p.before.iterations} -> {p.after.iterations}"),
        (
            "work x",
            lambda p: f"{p.before.work_multiplier:.3g} -> {p.after.work_multiplier:.3g}",
        ),
        (
            "solve",
            lambda p: (
                f"{format_interval(p.before.median_ci)} -> {format_interval(p.after.median_ci)}"
            ),
        ),
        (
            "solve / step loop",
            lambda p: (
                f"{format_ratio(p.before.time_ratio_ci)} -> {format_ratio(p.after.time_ratio_ci)}"
            ),
        ),
    ]
    return table_of(columns, sorted(pairs, key=lambda p: (p.mode, p.steps)))
