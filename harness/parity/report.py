"""Parity results as a table (one row per backend x cell x dtype x quantity), the typed record
that `parity --json` writes and harness/model_file/api.py returns, and parity.md."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from harness.atomic import write_text_atomic
from harness.escape import for_markdown
from harness.json_values import JsonObject, nulls_for_nonfinite
from harness.markdown import markdown_table, text_table
from harness.parity.run import BackendResult

SCHEMA_VERSION = 2


MODEL_QUANTITIES = ("y", "h_n", "c_n", "head")


def quantity_group(quantity: str) -> str:
    """What a comparison checks: a model output, weight or input gradients, or a file's
    outputs (anything a model file or its export returned, matched to a reference form)."""
    if quantity in ("grad:x", "grad:h0", "grad:c0"):
        return "grad inputs"
    if quantity.startswith("grad:"):
        return "grad weights"
    if quantity in MODEL_QUANTITIES:
        return quantity
    if ": weights " in quantity or quantity.endswith(": model"):
        return "file weights"  # an export's weights against its source's (check_weights)
    if ": runs" in quantity:
        return "file runs"  # whether it runs, and is right, at every size asked
    return "file outputs"


def summarize(results: Iterable[BackendResult]) -> list[JsonObject]:
    """Worst case per (backend, cell, dtype, quantity group) across the matrix."""
    rows: dict[tuple, JsonObject] = {}
    for result in results:
        cell, dtype = result.cell, result.dtype
        if result.status in ("skipped", "error"):
            key = (result.backend, cell, dtype, "-")
            row = rows.setdefault(key, _row(key, result.status, result.reason))
            row["cases"] += 1
            continue
        for c in result.comparisons:
            group = quantity_group(c.quantity)
            key = (result.backend, cell, dtype, group)
            # a weights check's note ("k of n weights matched") is its row's, passed or not
            note = result.reason if group == "file weights" else ""
            row = rows.setdefault(key, _row(key, "passed", note))
            row["cases"] += 1
            row["max_abs"] = max(row["max_abs"], c.max_abs)
            row["max_rel"] = max(row["max_rel"], c.max_rel)
            # atol 0: an exact match uses none of it; any difference, or none measured, is over.
            # A comparison under an error budget says its own share (atol grown per step).
            share = c.max_abs / c.atol if c.atol > 0 else (0.0 if c.max_abs == 0 else math.inf)
            if c.budget_factor is not None and math.isfinite(c.share_of_tolerance):
                share = c.share_of_tolerance
            row["worst_of_tolerance"] = max(row["worst_of_tolerance"], share)
            row["rtol"] = c.rtol
            if not c.passed and row["status"] == "passed":
                first = f"{result.case}: {c.message}"
                row["status"], row["reason"] = "FAILED", f"{note}; {first}" if note else first
    backends = list(dict.fromkeys(key[0] for key in rows))
    order = ("file runs", "file weights", "file outputs", "y", "h_n", "c_n", "head") + (
        "grad weights",
        "grad inputs",
        "-",
    )
    ranked = sorted(rows, key=lambda k: (backends.index(k[0]), k[1], k[2], order.index(k[3])))
    return [rows[key] for key in ranked]


def _row(key, status, reason):
    backend, cell, dtype, quantity = key
    return {
        "backend": backend,
        "cell": cell,
        "dtype": dtype,
        "quantity": quantity,
        "cases": 0,
        "max_abs": 0.0,
        "max_rel": 0.0,
        "worst_of_tolerance": 0.0,
        "rtol": None,
        "status": status,
        "reason": reason,
    }


COLUMNS = (
    "backend",
    "cell",
    "dtype",
    "quantity",
    "cases",
    "max_abs",
    "max_rel",
    "worst_of_tolerance",
    "status",
)


def format_table(rows: list[JsonObject], markdown: bool = False) -> str:
    return (markdown_table if markdown else text_table)(*table_cells(rows))


def table_cells(rows: list[JsonObject]) -> tuple[list[str], list[list[str]]]:
    """The summary's header and cells, for any of harness.markdown's writers."""

    def cell(row, col):
        value = row[col]
        if col in ("max_abs", "max_rel"):
            return "-" if row["quantity"] == "-" else f"{value:.1e}"
        if col == "worst_of_tolerance":
            return "-" if row["quantity"] == "-" else f"{value:.0%}"
        if col == "status" and row["reason"]:  # a passed row's: a weights check's note
            return f"{value}: {row['reason']}"
        return str(value)

    header = [c.replace("worst_of_tolerance", "of tol") for c in COLUMNS]
    return header, [[cell(r, c) for c in COLUMNS] for r in rows]


def audit_rows(results: Iterable[BackendResult]) -> list[JsonObject]:
    """audit_rows_from_records of BackendResult objects."""
    return audit_rows_from_records(r.as_dict() for r in results)


def audit_rows_from_records(records: Iterable[Mapping[str, Any]]) -> list[JsonObject]:
    """One export-form audit per (exporter, cell, layers, directions), float32 first, from
    results as a parity JSON holds them (dicts with `case` and `audit`)."""
    rows: dict[tuple, JsonObject] = {}
    for r in sorted(records, key=lambda r: r["dtype"] != "float32"):
        if not r.get("audit"):
            continue
        config = f"L{r['layers']} {'bi' if r['directions'] == 2 else 'uni'}"
        key = (r["audit"]["exporter"], r["cell"], config)
        rows.setdefault(key, {**r["audit"], "cell": r["cell"], "config": config})
    return [rows[k] for k in sorted(rows)]


def comparison_share(comparison: Mapping[str, Any]) -> tuple[float, bool]:
    """(share of tolerance, exact) of one comparison as a parity JSON holds it. exact: the
    pass rule's own share |got - ref| / (atol + rtol |ref|), recorded by the comparison. A file
    written before that field existed has only max_abs / atol, an upper bound of it (the rtol
    term only widens the limit): a passed check is capped at 1, a failed one is inf."""
    if comparison.get("share_of_tolerance") is not None:
        return float(comparison["share_of_tolerance"]), True
    if not comparison["passed"]:
        return math.inf, False
    max_abs, atol = comparison["max_abs"], comparison["atol"]
    bound = max_abs / atol if atol > 0 else (0.0 if max_abs == 0 else math.inf)
    return min(bound, 1.0), False


@dataclasses.dataclass
class WorstShare:
    """The worst share of tolerance over a (backend, "cell dtype") column's cases: inf for a
    broken backend, None when every case was skipped; exact: False when some share came from
    a file without the pass rule's own share."""

    share: float | None = None
    exact: bool = True


def tolerance_grid(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], WorstShare]:
    """(backend, "cell dtype") -> its worst share. Records as a parity JSON's `results` holds
    them."""
    grid: dict[tuple[str, str], WorstShare] = {}
    for r in records:
        column = f"{r['cell']} {r['dtype']}"
        entry = grid.setdefault((r["backend"], column), WorstShare())
        if r["status"] == "skipped":
            continue
        shares = [comparison_share(c) for c in r.get("comparisons", [])]
        worst = max([s for s, _ in shares], default=0.0)
        if r["status"] == "error":
            worst = math.inf
        entry.share = max(entry.share or 0.0, worst)
        entry.exact = entry.exact and all(exact for _, exact in shares)
    return grid


def failures(results: Iterable[Any], training: Iterable[Any] = ()) -> list[str]:
    """One line per failed comparison or broken backend, naming tensor, index and values, then
    one per training trajectory that failed. Results and trajectories as run or as a record
    holds them."""
    lines = []
    for r in results:
        if r.status == "error":
            lines.append(f"{r.backend} {r.case}: {r.reason}")
        lines += [f"{r.backend} {r.case}: {c.message}" for c in r.comparisons if not c.passed]
    return lines + [t.failure for t in training if t.failure]


def compared(results: Iterable[Any]) -> int:
    """How many (backend, case) checks ran (passed, failed or broke), skips not counted."""
    return sum(r.status in ("passed", "failed", "error") for r in results)


def failed_checks(results: Iterable[Any]) -> int:
    """How many (backend, case) pairs failed or broke (a case checked twice counted once)."""
    return len({(r.backend, r.case) for r in results if r.status in ("failed", "error")})


def skipped_backends(results: Iterable[BackendResult]) -> list[tuple[str, str]]:
    return sorted({(r.backend, r.reason) for r in results if r.status == "skipped"})


def parity_record(results: list[BackendResult], training: list, extra: dict, seconds: float):
    """The parity record (harness/records/parity.py), validated: passed when something was
    compared and nothing failed. extra: the model and export checked. A figure a failed check
    could not measure (NaN, an infinite share of its tolerance) is null in a comparison; a
    summary's worst share of tolerance keeps inf (JSON's Infinity)."""
    from harness.records.parity import ParityRecord

    record = {
        "schema_version": SCHEMA_VERSION,
        "command": "parity",
        "passed": compared(results) > 0 and not failures(results, training),
        **extra,
        "seconds": round(seconds, 1),
        "training": [t.as_dict() for t in training],
        "summary": summarize(results),
        "results": [nulls_for_nonfinite(r.as_dict()) for r in results],
    }
    return ParityRecord.model_validate(record)


def write_record(path, record) -> None:
    """A parity record as `--json` writes it, atomically."""
    write_text_atomic(path, json.dumps(record.model_dump(mode="json"), indent=1) + "\n")


def read_parity(path, doc: Any):
    """A parity JSON as its typed record, or a ResultsError of one line naming what is wrong."""
    from pydantic import ValidationError

    from harness.records.errors import one_line
    from harness.records.parity import ParityRecord, upgrade
    from harness.records.store import ResultsError

    try:
        return ParityRecord.model_validate(upgrade(doc), strict=True)  # no "yes" for true
    except ValidationError as exc:
        raise ResultsError(one_line(exc, f"parity record {path} is corrupt")) from None
    except (TypeError, AttributeError) as exc:
        raise ResultsError(f"parity record {path} is corrupt: {exc}") from None


def format_markdown(results, training, record) -> str:
    """parity.md: the table, the export forms, the trajectories, what was skipped and what
    failed; every name from a file escaped (harness/escape.py)."""
    from harness.parity.checks import TOLERANCES
    from harness.parity.training import TRAJECTORY_HEADER, trajectory_cells

    tolerances = ", ".join(
        f"{d}: rtol {t.rtol:g}, atol {t.atol:g} x max(1, max|ref|)" for d, t in TOLERANCES.items()
    )
    checked = [f"Model: {for_markdown(record.model.path)}."] if record.model else []
    checked += [f"Export: {for_markdown(record.against)}."] if record.against else []
    parts = [
        "# rnnbench parity report",
        "",
        *([" ".join(checked), ""] if checked else []),
        "Every backend against the NumPy float64 reference: outputs and the gradient of every "
        f"weight and input. Tolerances: {tolerances}. `of tol` is the worst |error| as a share "
        "of its tolerance.",
        "",
        format_table(summarize(results), markdown=True),
        "",
    ]
    audits = audit_rows_from_records(r.as_dict() for r in results)
    if audits:
        from harness.onnx.audit_table import format_audit

        parts += [
            "## ONNX export forms",
            "",
            "As exported for these cases (example T=5, B=2); "
            "`static (5)` means the exporter baked T into the graph, and the case was "
            "re-exported at its own T to check the numbers.",
            "",
            format_audit(audits, markdown=True),
            "",
        ]
    if training:
        parts += [
            "## Training trajectories (20 SGD steps, clipped)",
            "",
            markdown_table(TRAJECTORY_HEADER, trajectory_cells(training)),
            "",
        ]
    skipped = skipped_backends(results)
    failed_lines = failures(results, training)
    parts += [f"- skipped {for_markdown(b)}: {for_markdown(reason)}" for b, reason in skipped]
    parts += [f"- FAIL {for_markdown(line)}" for line in failed_lines]
    verdict = "all checks passed" if record.passed else "FAILED"
    if not record.passed and not failed_lines:
        verdict = "FAILED: nothing was compared, every check was skipped"
    return "\n".join(parts + ["", f"Verdict: {verdict}.", ""])
