"""SIGTERM during `rnnbench bench` (harness/termination.py): raised only at a stop point and
never inside an import (where a C++ extension may be below the interrupted frame), else
recorded, raised at the next stop point or reported when the handler is put back."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from harness import termination

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no SIGTERM to send oneself")


@pytest.fixture
def handler():
    previous = termination.install()
    try:
        yield
    finally:
        termination.restore(previous)


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # the handler runs at once, before the call returns


def test_a_sigterm_at_a_stop_point_is_raised_there(handler):
    reached = []

    @termination.stop_point
    def waits():
        _sigterm_self()
        reached.append("after")

    with pytest.raises(termination.Terminated):
        waits()
    assert reached == []


def test_a_sigterm_elsewhere_waits_for_the_next_stop_point(handler):
    _sigterm_self()  # not raised here
    with pytest.raises(termination.Terminated):
        termination.sleep(0)


def test_a_sigterm_no_stop_point_raised_is_reported_by_restore():
    previous = termination.install()
    try:
        _sigterm_self()
    finally:
        assert termination.restore(previous) is True
    assert signal.getsignal(signal.SIGTERM) == previous
    assert termination.restore(previous) is False  # answered once


def test_a_sigterm_during_an_import_from_a_stop_point_lets_the_import_finish(
    handler, tmp_path, monkeypatch
):
    (tmp_path / "imported_while_terminated.py").write_text(
        "from tests.test_termination import _sigterm_self\n_sigterm_self()\nfinished = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "imported_while_terminated", raising=False)

    @termination.stop_point
    def imports():
        import imported_while_terminated

        return imported_while_terminated.finished

    assert imports() is True
    with pytest.raises(termination.Terminated):
        termination.sleep(0)
