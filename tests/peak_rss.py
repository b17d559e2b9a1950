"""The peak RSS of a command run in a process of its own, for tests that hold a command to a
memory ceiling.

wait4's ru_maxrss of a child is not the child's own peak where the child was started by the
test process: on Linux, exec records the high-water RSS of the memory the process had before
it (signal->maxrss), and Python's subprocess starts a child with vfork, whose memory before
exec is the test process's own (1.6 GiB once pytest has imported TF and torch). So the command
is started by a launcher, a bare interpreter (-I -S: no site, no imports beyond the standard
library's few) that starts the command and reports its wait4 ru_maxrss: what exec records then
is the launcher's few megabytes, and the figure is the command's own peak, its waited-for
children's included (Linux's RUSAGE_BOTH of a reaped child)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

LAUNCHER = """
import os, subprocess, sys, threading
report, timeout_s, command = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
child = subprocess.Popen(command)
watchdog = threading.Timer(timeout_s, child.kill)
watchdog.start()
_, status, usage = os.wait4(child.pid, 0)
watchdog.cancel()
with open(report, "w") as handle:
    handle.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(
    command: list[str], env: dict[str, str] | None = None, timeout_s: float = 300
) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in bytes) of `command`, its stdout discarded; killed
    (exit code -9) after timeout_s."""
    with tempfile.TemporaryDirectory() as folder:
        report, err = Path(folder) / "peak", Path(folder) / "stderr"
        with err.open("wb") as handle:
            launcher = subprocess.run(
                [sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), str(timeout_s)] + command,
                stdout=subprocess.DEVNULL,
                stderr=handle,
                env=os.environ.copy() if env is None else env,
                timeout=timeout_s + 60,
            )
        text = err.read_bytes().decode(errors="replace")
        if launcher.returncode != 0 or not report.exists():
            raise RuntimeError(f"the launcher failed (exit {launcher.returncode}): {text}")
        code, kib = map(int, report.read_text().split())
    return code, text, kib * 1024  # ru_maxrss is in KiB on Linux
