"""The export-form audit as a table (text or Markdown): one row per exported file."""

from __future__ import annotations

from harness.json_values import JsonObject
from harness.markdown import markdown_table, text_table

COLUMNS = ("exporter", "cell", "config", "form", "T", "nodes", "ops", "lbr", "KiB", "export s")


def format_audit(rows: list[JsonObject], markdown: bool = False) -> str:
    return (markdown_table if markdown else text_table)(COLUMNS, audit_cells(rows))


def audit_cells(rows: list[JsonObject]) -> list[list[str]]:
    """One row of cells per audit, under COLUMNS."""
    body = []
    for r in rows:
        ops = ", ".join(
            f"{k} {v}" for k, v in sorted(r["op_counts"].items(), key=lambda kv: -kv[1])[:5]
        )
        lbr = ",".join(map(str, r["gru_linear_before_reset"])) or "-"
        seconds = "-" if r["export_seconds"] is None else f"{r['export_seconds']:.2f}"
        size = f"{r['file_bytes'] / 1024:.0f}"
        body.append(
            [
                r["exporter"],
                r.get("cell", "?"),
                r.get("config", ""),
                r["form"],
                r["T"],
                str(r["node_count"]),
                ops,
                lbr,
                size,
                seconds,
            ]
        )
    return body
