"""One benchmark at a time on a machine: every interleaved group is timed while holding an
exclusive lock (flock) on one file, /tmp/rnnbench.lock unless RNNBENCH_LOCK names another.
Two Dask workers on one host, or a local run beside a cluster's worker, then take turns
instead of timing each other's noise. The kernel drops the lock when its holder dies.

The path is fixed, not $TMPDIR (a batch system may set one a job): where jobs on one node see
different /tmp folders, set RNNBENCH_LOCK to a file they all see. The file is created open to
every user (0666) and opened read-only where it cannot be written, so that every user's
benchmarks can take the same lock."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness import termination

DEFAULT = "/tmp/rnnbench.lock"


class LockError(RuntimeError):
    """The lock file cannot be opened; the message names it and what to do."""


def lock_path() -> Path:
    return Path(os.environ.get("RNNBENCH_LOCK") or DEFAULT)


@contextlib.contextmanager
def machine_lock(notice: Callable[[str], None] | None = None) -> Iterator[float]:
    """Held for the body; yields the seconds spent waiting for it. `notice` hears once when
    another benchmark holds it. Where the platform has no flock (Windows), the body runs
    unlocked."""
    try:
        import fcntl
    except ImportError:
        yield 0.0
        return
    path = lock_path()
    started = time.monotonic()
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (notice or _to_stderr)(
                f"waiting for another rnnbench benchmark on this machine (lock {path})"
            )
            _flock(fd, path, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without flock (some NFS, Lustre mounts)
            raise _error(path, exc) from None
        yield time.monotonic() - started
    finally:
        os.close(fd)  # releases the lock


def check_lock() -> None:
    """A LockError now, before anything is written, if the lock file cannot be opened."""
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return
    os.close(_open(lock_path()))


@termination.stop_point  # it may wait for another benchmark for long
def _flock(fd: int, path: Path, operation: int) -> None:
    import fcntl

    try:
        fcntl.flock(fd, operation)
    except OSError as exc:
        raise _error(path, exc) from None


def _open(path: Path) -> int:
    """A descriptor of the lock file (read-write, else read-only: flock needs no write
    access, but some network file systems want it), created (mode 0666) if missing. An
    existing file is opened without O_CREAT, which a sticky /tmp refuses on another user's."""
    for _ in range(3):
        for mode in (os.O_RDWR, os.O_RDONLY):
            try:
                return os.open(path, mode)
            except PermissionError:
                continue
            except FileNotFoundError:
                break
            except OSError as exc:
                raise _error(path, exc) from None
        else:
            raise _error(path, PermissionError(13, "permission denied"))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue  # another process made it first
        except OSError as exc:
            raise _error(path, exc) from None
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)  # beyond the umask: other users open it too
        return fd
    raise LockError(f"cannot open the machine lock {path}: it keeps appearing and vanishing")


def _error(path: Path, exc: OSError) -> LockError:
    return LockError(
        f"cannot open the machine lock {path}: {exc.strerror or exc}; set RNNBENCH_LOCK to a "
        "file every benchmark on this machine can open"
    )


def _to_stderr(message: str) -> None:
    print(f"rnnbench: {message}", file=sys.stderr)
