"""The measure the memory tests rely on (tests/peak_rss.py): a child's own peak RSS, which
counts what the child allocates and not what the test process holds."""

from __future__ import annotations

import resource
import sys

import pytest

from tests.peak_rss import run_measured

MiB = 2**20

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="ru_maxrss is read as Linux reports it (KiB)"
)


def _own_high_water() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_a_child_is_measured_at_what_it_allocates():
    code, err, peak = run_measured([sys.executable, "-c", "held = b'1' * (600 * 2**20)"])
    assert code == 0, err
    assert 600 * MiB <= peak < 700 * MiB, peak / MiB


def test_the_test_process_s_memory_is_not_counted():
    """Started from this process directly, a child's ru_maxrss is this process's high-water
    (exec records the memory it replaces, and subprocess's vfork shares this process's)."""
    held = b"" if _own_high_water() >= 2**30 else b"1" * 2**30  # as under a full pytest run
    assert _own_high_water() >= 2**30
    del held
    code, err, peak = run_measured([sys.executable, "-c", "pass"])
    assert code == 0, err
    assert peak < 100 * MiB, peak / MiB


def test_a_command_past_its_timeout_is_killed():
    code, _, _ = run_measured([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1)
    assert code == -9
