"""What rnnbench writes to a terminal besides its tables: one status line redrawn in place, and
lines that may hold a name from a file (shown escaped: harness/escape.py)."""

from __future__ import annotations

import sys

from harness.escape import for_terminal


def progress(text: str) -> None:
    """One status line, redrawn in place, on a terminal only."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + for_terminal(text))
        sys.stderr.flush()


def say(text: object = "", *, err: bool = False) -> None:
    """print() of one line whose text is data: its control characters (a line break too)
    shown escaped."""
    print(for_terminal(text), file=sys.stderr if err else sys.stdout)


def say_lines(text: str, *, err: bool = False) -> None:
    """say() of each line of a block rnnbench composed (its line breaks kept)."""
    for line in text.split("\n"):
        say(line, err=err)
