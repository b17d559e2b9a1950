"""The iteration laws a prediction reads, fitted (harness/sweeps/iteration_law.py) on a
parallel-in-time sweep: the one given, else $RNNBENCH_ITERATION_LAW, else the sweep committed in
this checkout (results/cpu-2core/parallel-in-time.json). Iteration counts are properties of the
method and the model, not of the machine, so one sweep serves every machine."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from harness.predict.errors import CannotPredict
from harness.records.parallel_in_time import check_sweep, is_sweep
from harness.records.store import ResultsError
from harness.sweeps import iteration_law

ENV = "RNNBENCH_ITERATION_LAW"
COMMITTED = Path(__file__).resolve().parents[2] / "results" / "cpu-2core" / "parallel-in-time.json"
MAKE_ONE = "`rnnbench parallel-in-time --sweep default --json FILE` makes one"


def default_path() -> Path:
    return Path(os.environ.get(ENV) or COMMITTED)


def load(path: str | Path | None = None):
    """(laws by (cell, method), "FILE at commit C") of the sweep at path (default_path())."""
    path = Path(path) if path else default_path()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise CannotPredict(
            f"no parallel-in-time sweep at {path} to read the iteration law from: give one "
            f"(--law FILE, or ${ENV}); {MAKE_ONE}"
        ) from None
    return _fitted(str(path), stamp)


@functools.lru_cache(maxsize=4)
def _fitted(path: str, stamp: int):
    del stamp  # part of the cache key only: a rewritten file is read again
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CannotPredict(f"iteration law: {path} is not a readable JSON file ({exc})") from None
    if not is_sweep(doc):
        raise CannotPredict(f"iteration law: {path} is not a parallel-in-time sweep; {MAKE_ONE}")
    try:
        sweep = check_sweep(doc, path)
    except ResultsError as exc:
        raise CannotPredict(f"iteration law: {exc}") from None
    laws = iteration_law.fit_all(iteration_law.points(sweep.rows))
    commit = (sweep.commit or "unrecorded")[:10]
    return laws, f"{path} at commit {commit}"


def require(laws, cell: str, methods, source: str) -> None:
    missing = [m for m in methods if (cell, m) not in laws]
    if missing:
        raise CannotPredict(
            f"the sweep {source} fits no iteration law for {cell} {', '.join(missing)}: it needs "
            "three converged LLE values of that cell and method"
        )
