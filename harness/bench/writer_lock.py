"""One writer per results file: a run holds an exclusive flock on a lock file beside its --out
(`.NAME.lock`, with its pid and start time in it) for as long as it may write the file. A
second run with the same --out is refused at its start, naming the first; the kernel drops the
lock when its holder dies, so a killed run never leaves the file locked."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from pathlib import Path

from harness.records.store import ResultsError


def lock_file(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def results_writer(out: str | Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one writer is the user's to keep
        yield
        return
    out = Path(out)
    path = lock_file(out)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ResultsError(f"cannot lock results file {out}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
            raise ResultsError(
                f"{out} is being written by another rnnbench run ({holder}): wait for it to "
                "end, or give this run another --out"
            ) from None
        except OSError as exc:  # a file system without flock
            raise ResultsError(f"cannot lock results file {out}: {exc.strerror or exc}") from None
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {stamp}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
