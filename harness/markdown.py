"""Markdown tables from column specifications: (header, how to show one item)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def table_of(columns: Sequence[Column], items: Iterable[dict[str, Any]]) -> str:
    return markdown_table(
        [h for h, _ in columns], ([show(i) for _, show in columns] for i in items)
    )


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: item[name]


def fields(*names: str) -> list[Column]:
    """Columns that show a field as it is, headed by its name."""
    return [(name, field(name)) for name in names]


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"
