"""The machine lock: one benchmark group at a time on a host, across processes and users."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.machine.lock import DEFAULT, LockError, lock_path, machine_lock

HOLD = """
import sys
from pathlib import Path
from harness.machine.lock import machine_lock
with machine_lock():
    print("held", flush=True)
    sys.stdin.readline()  # until the test says go
"""


def test_a_second_benchmark_waits_for_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_LOCK", str(tmp_path / "lock"))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    assert holder.stdout.readline().strip() == "held"
    heard = []

    def release(message: str) -> None:  # told to wait: let the holder go
        heard.append(message)
        holder.stdin.write("go\n")
        holder.stdin.flush()

    with machine_lock(notice=release):
        assert holder.wait(timeout=30) == 0  # it had to end before this body could run
    assert len(heard) == 1 and str(tmp_path / "lock") in heard[0]
    with machine_lock(notice=heard.append):  # free now: no notice
        pass
    assert len(heard) == 1


def test_the_lock_file_is_open_to_every_user_and_its_path_fixed(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNBENCH_LOCK", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # a batch job's own folder: not followed
    assert str(lock_path()) == "/tmp/rnnbench.lock"
    monkeypatch.setenv("RNNBENCH_LOCK", str(tmp_path / "lock"))
    with machine_lock():
        pass
    assert stat.S_IMODE(os.stat(tmp_path / "lock").st_mode) == 0o666


def test_a_lock_that_cannot_be_opened_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNBENCH_LOCK", str(tmp_path / "missing-folder" / "lock"))
    with (
        pytest.raises(LockError, match=r"cannot open the machine lock .*set RNNBENCH_LOCK"),
        machine_lock(),
    ):
        pass
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", "quick", "--only", "numpy/peak", "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("rnnbench: error: cannot open the machine lock")
    assert not out.exists()


def test_the_suite_times_under_a_lock_of_its_own():
    """tests/conftest.py: a user's benchmark holding the machine's lock stalls no test, and no
    test stalls it; a worker process the suite starts takes the same lock as the suite."""
    assert lock_path() != Path(DEFAULT) and lock_path().name == "rnnbench.lock"
    child = subprocess.run(
        [sys.executable, "-c", "from harness.machine.lock import lock_path; print(lock_path())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == str(lock_path())
