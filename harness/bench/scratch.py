"""The scratch folder a run's worker processes log into (rnnbench-workers-PID-*, in the temp
folder): removed when the run ends, and, where a run was killed before it could remove its own
(kill -9), by the next run, once the process that made it is gone."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "rnnbench-workers-"


def worker_logs() -> tempfile.TemporaryDirectory:
    remove_stale()
    return tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-")


def remove_stale(folder: str | Path | None = None) -> list[Path]:
    """Remove the scratch folders of runs whose process has ended; return them."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not path.is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean
        return True
    return True
