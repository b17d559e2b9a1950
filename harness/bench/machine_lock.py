"""One benchmark at a time on a machine: every interleaved group is timed while holding an
exclusive lock on a file in the machine's temporary folder (RNNBENCH_LOCK overrides where).
Two Dask workers on one host, or a local run beside a cluster's worker, then take turns
instead of timing each other's noise. The kernel drops the lock when its holder dies."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def lock_path() -> Path:
    return Path(os.environ.get("RNNBENCH_LOCK") or Path(tempfile.gettempdir()) / "rnnbench.lock")


@contextlib.contextmanager
def machine_lock(notice: Callable[[str], None] | None = None) -> Iterator[float]:
    """Held for the body; yields the seconds spent waiting for it. `notice` hears once when
    another benchmark holds it. Where the platform has no
    flock (Windows), the body runs unlocked."""
    try:
        import fcntl
    except ImportError:
        yield 0.0
        return
    path = lock_path()
    started = time.monotonic()
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (notice or _to_stderr)(
                f"waiting for another rnnbench benchmark on this machine (lock {path})"
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _to_stderr(message: str) -> None:
    print(f"rnnbench: {message}", file=sys.stderr)
