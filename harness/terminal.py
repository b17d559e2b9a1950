"""What rnnbench writes to a terminal besides its tables: one status line redrawn in place."""

from __future__ import annotations

import sys


def progress(text: str) -> None:
    """One status line, redrawn in place, on a terminal only."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()
