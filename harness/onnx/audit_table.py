"""The export-form audit as a table (text or Markdown): one row per exported file."""

from __future__ import annotations

from typing import Any

COLUMNS = ("exporter", "cell", "config", "form", "T", "nodes", "ops", "lbr", "KiB", "export s")


def format_audit(rows: list[dict[str, Any]], markdown: bool = False) -> str:
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
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max([len(c)] + [len(b[i]) for b in body]) for i, c in enumerate(COLUMNS)]
    fmt = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(COLUMNS), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])
