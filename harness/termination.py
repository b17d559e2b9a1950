"""SIGTERM while `rnnbench bench` measures, answered only where an exception is safe to raise.

Python runs a signal handler between two bytecodes of the main thread, wherever they are: also
in Python code that a C++ extension called (torch's or onnxruntime's modules being imported, a
pybind11 callback). An exception raised there crosses C++, which may end the process in
std::terminate (exit -6) or swallow it, half an import done. So the handler (on_sigterm) only
records the request, and raises Terminated where the main thread waits in code of ours: a
function marked @stop_point (a worker's answer, a pause, the machine lock), and not inside an
import made there. A request made elsewhere is raised when a stop point is next entered; the
run's main thread enters one within seconds while it measures, and one left when the command
ends is answered by its caller (restore says so)."""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_requested = False


class Terminated(BaseException):
    """SIGTERM, handled as Ctrl-C is: the workers stopped, their folder removed, a message,
    exit 143."""


def stop_point(function: F) -> F:
    """Mark `function` as a place where a SIGTERM stops the run: one pending is raised on
    entry, one that comes while it runs is raised at once. Only for code that waits or is
    pure Python (the standard library's included) for as long as it runs."""

    @functools.wraps(function)
    def stoppable(*args, **kwargs):
        if _requested:
            raise Terminated()
        return function(*args, **kwargs)

    return stoppable  # type: ignore[return-value]


_STOP_POINT = stop_point(lambda: None).__code__  # the code object every stop point runs in
# importlib._bootstrap's module names: frozen, and renamed once importlib is imported
_IMPORT_SYSTEM = {
    "_frozen_importlib",
    "_frozen_importlib_external",
    "importlib._bootstrap",
    "importlib._bootstrap_external",
}


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    if _at_stop_point(frame):
        raise Terminated()


def _at_stop_point(frame: FrameType | None) -> bool:
    """Whether the interrupted frame runs inside a stop point, and not in an import made from
    it (an extension module's initialisation may run the Python code it imports from C++)."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _IMPORT_SYSTEM:
            return False
        if frame.f_code is _STOP_POINT:
            return True
        frame = frame.f_back
    return False


def install() -> Any:
    """Answer SIGTERM with on_sigterm, no request pending; return the handler it replaces."""
    global _requested
    _requested = False
    return signal.signal(signal.SIGTERM, on_sigterm)


def restore(previous: Any) -> bool:
    """Put `previous` back; whether a SIGTERM came that no stop point raised (the request is
    the caller's to answer)."""
    global _requested
    signal.signal(signal.SIGTERM, previous)
    pending, _requested = _requested, False
    return pending


@stop_point
def sleep(seconds: float) -> None:
    time.sleep(seconds)
