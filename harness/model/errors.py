"""Describing failures in one line, and telling a missing optional package from a bug."""

from __future__ import annotations

import traceback


class NotSupported(Exception):
    """This backend cannot run this spec, input or mode here; the message says why. (Defined
    here, below harness/model/protocol.py which re-exports it, so that the model-file limits
    can raise it without importing the backend protocol.)"""


class BadInput(ValueError):
    """Input a user gave (a flag, --inputs, a file's values) that cannot be used: one line,
    exit 2, naming what was wrong and what is allowed."""


def describe_error(exc: BaseException) -> str:
    """One line: the exception, its first line of message, and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first_line}{where}"


def missing_package(exc: ModuleNotFoundError, optional: tuple[str, ...]) -> str | None:
    """The optional package whose absence `exc` reports, or None when `exc` names anything
    else (a mistyped internal module, a broken install): that is an error, never a skip."""
    name = exc.name or ""
    root = name.split(".")[0]
    return root if root in optional and _is_absent(root) else None


def _is_absent(package: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(package) is None
    except (ImportError, ValueError):
        return True
