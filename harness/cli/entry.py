"""The `rnnbench` command's first lines: SIGTERM is answered (a message, exit 143) before
anything heavy is imported, then the command runs. `rnnbench bench` installs its own handler
while it measures, which says where the groups measured so far are."""

from __future__ import annotations

import os
import signal
import sys


def _terminated(signum, frame) -> None:
    # An exception raised here could land inside an import and be caught there: exit at once
    # (what is written is written atomically: a stop leaves no half file).
    sys.stderr.write("rnnbench: terminated\n")
    sys.stderr.flush()
    os._exit(143)


def run() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    from harness.cli.main import main

    sys.exit(main())
