"""`python -m harness.cluster.group_process PARENT_PID REQUEST RESULT`: one interleaved group
timed in a process of its own, for a Dask worker (whose own process is daemonic and may not
start multiprocessing children). REQUEST is JSON {cases: [BenchCase.as_dict()], timing,
selfcheck: whether to measure the machine's timer resolution and loop overhead, under the
lock}; RESULT receives the group's records and that selfcheck (or null) as JSON, written
atomically once the group ends.

The group runs under the machine lock. If the process that started it dies (a worker killed
mid-group), a watchdog stops the case workers and exits within a second: the scheduler runs
the group again elsewhere, and nothing keeps timing on a machine nobody listens to. SIGTERM
(the task cancelled) stops them the same way."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

WATCH_EVERY_S = 0.25
EXIT_ORPHANED = 3
EXIT_TERMINATED = 4


def main(argv: list[str]) -> int:
    parent, request_path, result_path = argv
    _watch_parent(int(parent))  # before the imports: the parent may die during them
    signal.signal(signal.SIGTERM, lambda *_: _stop(EXIT_TERMINATED))

    from harness.atomic import write_text_atomic
    from harness.bench.case import BenchCase
    from harness.bench.engine import selfcheck
    from harness.bench.group import measure_group
    from harness.bench.scratch import worker_logs
    from harness.machine.lock import machine_lock

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    cases = [BenchCase.from_dict(c) for c in request["cases"]]
    with (
        worker_logs() as logs,
        machine_lock(notice=lambda m: print(m, file=sys.stderr)),
    ):
        checked = selfcheck() if request.get("selfcheck") else None
        records = measure_group(cases, request["timing"], Path(logs))
    answer = {"records": [r.model_dump(mode="json") for r in records], "selfcheck": checked}
    write_text_atomic(result_path, json.dumps(answer) + "\n")
    return 0


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_EVERY_S)
        _stop(EXIT_ORPHANED)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _stop(code: int) -> None:
    """Kill the case workers (a build may not notice its parent for minutes), then exit."""
    try:
        for child in multiprocessing.active_children():
            with contextlib.suppress(OSError):
                child.kill()
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
