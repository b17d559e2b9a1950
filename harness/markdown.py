"""The one table writer: Markdown, plain aligned columns for a pipe or a log, and a rich table
on a terminal; tables built from column specifications (header, how to show one item). A cell
is text (a name from a file among it): escaped for where it goes (harness/escape.py), unless it
is Markdown that rnnbench wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from harness.escape import for_markdown, for_terminal

Column = tuple[str, Callable[[Any], Any]]  # (header, what one item shows)


class Markdown(str):
    """A cell that is Markdown rnnbench wrote (a code span, emphasis): placed as it is."""


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """One Markdown cell: text escaped; Markdown's own | would end the cell, a line break the
    row."""
    if isinstance(value, Markdown):
        return " ".join(value.split("\n")).replace("|", "\\|")
    return for_markdown(value)


def text_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Plain columns padded to their widest cell, a rule under the header (the last column is
    not padded: a long reason does not widen the others)."""
    table = [[for_terminal(c) for c in header], *([for_terminal(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    table.insert(1, ["-" * w for w in widths])
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def print_table(header: Sequence[str], rows: Iterable[Sequence[Any]], markdown=False) -> None:
    """A rich table on a terminal; text_table where stdout is a pipe or rich is missing;
    markdown_table when asked for."""
    if markdown:
        print(markdown_table(header, rows))
        return
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(text_table(header, rows))
        return
    console = Console()
    if not console.is_terminal:
        print(text_table(header, rows))
        return
    from rich.markup import escape

    def text(cell) -> str:  # cells are text, not markup nor control sequences
        return escape(for_terminal(cell))

    table = Table(*map(text, header), header_style="bold")
    for row in rows:
        table.add_row(*map(text, row))
    console.print(table)


def table_of(columns: Sequence[Column], items: Iterable[Any]) -> str:
    return markdown_table(
        [h for h, _ in columns], ([show(i) for _, show in columns] for i in items)
    )


def field(name: str) -> Callable[[Any], Any]:
    """What an item (a typed row) holds as its attribute `name`."""
    return lambda item: getattr(item, name)


def fields(*names: str) -> list[Column]:
    """Columns that show an attribute as it is, headed by its name."""
    return [(name, field(name)) for name in names]


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"
