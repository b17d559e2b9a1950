"""The issue's fault replayed on a real worker: stopped (SIGSTOP) for seconds in the middle of
a round and resumed. The round is timed again and counted; no sample holds the stop."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.bench.case import make_case
from harness.bench.group import measure_group
from harness.bench.suites import TIMING_DEFAULTS

STOP_S = 2.0
TIMING = {**TIMING_DEFAULTS, "warmup_s": 0.0, "min_round_s": 0.2, "rounds": 3, "pause_s": 0.0}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop_mid_round(pid: int, stopped: list[float]) -> None:
    """Once the worker has used 50 ms of CPU in its next round, stop it for STOP_S."""
    start = _cpu_s(pid)
    deadline = time.monotonic() + 30
    while _cpu_s(pid) - start < 0.05 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(pid, signal.SIGSTOP)
    time.sleep(STOP_S)
    os.kill(pid, signal.SIGCONT)
    stopped.append(STOP_S)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
def test_a_worker_stopped_mid_round_leaves_no_polluted_sample(tmp_path):
    case = make_case("numpy", "forward", "lstm", batch=4, steps=16, input_size=32, hidden=64)
    stopped: list[float] = []
    threads: list[threading.Thread] = []

    def plan(pass_s: float) -> int:
        """After the first round: stop the worker in the middle of its second."""
        (worker,) = multiprocessing.active_children()
        thread = threading.Thread(target=_stop_mid_round, args=(worker.pid, stopped))
        thread.start()
        threads.append(thread)
        return 3

    (record,) = measure_group([case], TIMING, tmp_path, plan)
    threads[0].join()
    assert stopped == [STOP_S]
    assert record.status == "ok", record.reason
    assert len(record.samples_s) == 3 and record.retimed >= 1
    rounds_s = [s * record.loops for s in record.samples_s]
    assert max(rounds_s) < STOP_S, rounds_s  # no kept round holds the stop
