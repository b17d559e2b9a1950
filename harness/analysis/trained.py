"""The trained examples (benchmarks/trained/train.py): what training did to each model, read
from its training record (kind "rnnbench-training"), its parity record (`parity --model
TRAINED --against EXPORT --json`) and the `bench --model` runs of its initial and trained
weights. The before/after pairing is the training record's: its files say which initial file
each trained model started from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.escape import for_markdown
from harness.markdown import field, table_of
from harness.stats import format_interval, format_ratio

KIND = "rnnbench-training"
TITLE = "Trained examples: what learning did to parity, speed and parallel in time"


def is_training(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == KIND


def check_training(doc: dict, path) -> dict:
    from harness.records.store import ResultsError

    models = doc.get("models")
    if not isinstance(models, list) or not all(
        isinstance(m, dict) and {"name", "files", "val_loss", "baseline"} <= set(m) for m in models
    ):
        raise ResultsError(
            f"{path} is corrupt: a training record needs models [{{name, files, val_loss, "
            "baseline}}]"
        )
    return doc


def analyse(trainings: list[dict], models: list[dict], parities: list[dict]) -> list[dict]:
    """One entry per trained model: its training, parity and before/after rows."""
    from harness.bench.model_suite import model_name

    by_name = {(m["model"]): m for m in models}
    parity_of = {
        Path(p["model"]["path"]).name: p for p in parities if isinstance(p.get("model"), dict)
    }
    out = []
    for doc in trainings:
        for m in doc["models"]:
            trained = by_name.get(model_name(m["files"]["trained"]))
            initial = by_name.get(model_name(m["files"]["initial"]))
            out.append(
                {
                    **m,
                    "parity": parity_of.get(Path(m["files"]["trained"]).name),
                    "pairs": _pairs(initial, trained),
                    "timed": trained,
                }
            )
    return out


def _pairs(initial: dict | None, trained: dict | None) -> list[dict]:
    """Parallel-in-time rows at the same (method, B, T) before and after training."""
    if initial is None or trained is None:
        return []
    before = {(p["mode"], p["batch"], p["steps"]): p for p in initial["parallel_in_time"]}
    return [
        {"key": k, "before": before[k], "after": p}
        for p in trained["parallel_in_time"]
        if (k := (p["mode"], p["batch"], p["steps"])) in before
    ]


def summary(entry: dict) -> str:
    """What training did to the LLE and the iterations, at the longest T both runs timed."""
    pairs = entry["pairs"]
    if not pairs:
        return ""
    T = max(p["key"][2] for p in pairs)
    at = {p["key"][0]: p for p in pairs if p["key"][2] == T}
    any_pair = next(iter(at.values()))
    lle = f"LLE {any_pair['before']['lle']:+.3f} -> {any_pair['after']['lle']:+.3f} per step"
    counts = "; ".join(
        f"{mode} {p['before']['iterations']} -> {p['after']['iterations']} iterations "
        f"(solve / step loop {format_ratio(p['before']['time_ratio_ci'])} -> "
        f"{format_ratio(p['after']['time_ratio_ci'])})"
        for mode, p in sorted(at.items())
    )
    direction = (
        "closer to" if any_pair["after"]["lle"] > any_pair["before"]["lle"] else "further from"
    )
    return (
        f"Training moved the largest Lyapunov exponent {direction} 0 ({lle}) at T={T}, B=1: "
        f"{counts}."
    )


def markdown(entries: list[dict]) -> str:
    parts = [
        "Each model is trained by `benchmarks/trained/train.py` on data an installed package "
        "ships; the initial weights are kept, so that the parallel-in-time verdict is shown "
        "before and after learning (iterations and LLE counted on B=1 sequences, solve and step "
        "loop timed in one interleaved group).",
        "",
        table_of(
            [
                ("model", field("name")),
                ("what it learned", lambda e: f"{e['model']}: {e['task']}"),
                ("epochs", field("epochs")),
                ("validation loss", _val),
                (
                    "baseline",
                    lambda e: f"{e['baseline']['val_loss']:.4f} ({e['baseline']['name']})",
                ),
                ("parity of file and export", _parity),
            ],
            entries,
        ),
    ]
    for entry in entries:
        if not entry["pairs"]:
            continue
        name = for_markdown(entry["name"])
        parts += ["", f"**{name}**: {summary(entry)}", "", _pairs_table(entry["pairs"])]
    return "\n".join(parts)


def _val(e: dict) -> str:
    text = f"{e['val_loss']:.4f}"
    if e.get("val_accuracy") is not None:
        text += f" (accuracy {100 * e['val_accuracy']:.1f}%)"
    return text


def _parity(e: dict) -> str:
    record = e.get("parity")
    if record is None:
        return "not run"
    results = record["results"]
    checked = [r for r in results if r["status"] in ("passed", "failed", "error")]
    failed = [r for r in checked if r["status"] != "passed"]
    skipped = len(results) - len(checked)
    verdict = "passed" if record.get("passed") else "FAILED"
    return f"{verdict}: {len(checked) - len(failed)} of {len(checked)} checks ({skipped} skipped)"


def _pairs_table(pairs: list[dict]) -> str:
    def both(name, fmt):
        return lambda p: f"{fmt(p['before'][name])} -> {fmt(p['after'][name])}"

    columns = [
        ("method", lambda p: p["key"][0]),
        ("T", lambda p: p["key"][2]),
        ("LLE", both("lle", lambda v: f"{v:+.3f}")),
        ("iterations", both("iterations", str)),
        ("work x", both("work_multiplier", lambda v: f"{v:.3g}")),
        ("solve", both("median_ci", format_interval)),
        ("solve / step loop", both("time_ratio_ci", format_ratio)),
    ]
    return table_of(columns, sorted(pairs, key=lambda p: (p["key"][0], p["key"][2])))
