"""One style per plotted series: colour, marker and line style together, so that no two
series of one figure look alike (ten colours alone repeat from the eleventh series)."""

from __future__ import annotations

from typing import Any, TypedDict

COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers against 10 colours: 70 pairs differ
LINES = ("-", "--", "-.", ":")


class Style(TypedDict):
    """How one plotted series looks: matplotlib's keyword arguments."""

    color: str
    marker: str
    linestyle: str


class Series(TypedDict):
    """A labelled line of a figure and how it looks (what a legend tells apart)."""

    axis: int
    label: str
    color: str
    marker: str
    linestyle: str


def style(index: int) -> Style:
    """Keyword arguments for the index-th series of a figure."""
    return {
        "color": COLOURS[index % len(COLOURS)],
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINES[(index // (len(COLOURS) * len(MARKERS))) % len(LINES)],
    }


def labelled_series(fig: Any) -> list[Series]:
    """Every labelled line of a figure with how it looks (what a legend tells apart)."""
    from matplotlib.colors import to_hex

    out: list[Series] = []
    for index, axis in enumerate(fig.axes):
        for line in axis.get_lines():
            label = line.get_label()
            if label.startswith("_"):
                continue
            out.append(
                {
                    "axis": index,
                    "label": label,
                    "color": to_hex(line.get_color()),
                    "marker": str(line.get_marker()),
                    "linestyle": str(line.get_linestyle()),
                }
            )
    return out
