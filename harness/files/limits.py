"""What a user's file may make rnnbench allocate, and the refusals that never fall back.

Every size a model file, an archive member or an --inputs array declares is checked here before
anything of that size is allocated: a 1 KB file may declare a 4 GiB constant. The budget is a
share of the memory available when the command starts (DEFAULT_SHARE), or what
`--memory-budget` (or RNNBENCH_MEMORY_BUDGET, which worker processes inherit) says.

A refusal for safety (too large, or code a file would run) is `Refused`: a NotSupported that the
paths which fall back to a black box on a file they cannot read must re-raise, never swallow."""

from __future__ import annotations

import os
import re

from harness.model.errors import NotSupported

ENV = "RNNBENCH_MEMORY_BUDGET"
DEFAULT_SHARE = 0.10  # of the memory available at start: 2.1 GiB of 21 here
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
ALLOWED = "bytes with an optional K, M, G or T suffix (binary), e.g. 2G or 512M"


class Refused(NotSupported):
    """A file refused for safety: too large for the budget, or holding code that would run."""


def parse_size(text: str) -> int:
    """'2G' -> 2**31; a clear ValueError naming what is allowed otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"memory budget {text!r}: allowed {ALLOWED}")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo, else psutil's, else 4 GiB (said in the refusal)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # no psutil, or no reading: a modest default
        return 4 * 2**30


def budget_bytes() -> int:
    """The budget in bytes: RNNBENCH_MEMORY_BUDGET if set, else DEFAULT_SHARE of available."""
    text = os.environ.get(ENV)
    if text:
        try:
            return parse_size(text)
        except ValueError as exc:
            raise NotSupported(f"{ENV}: {exc}") from None
    return int(DEFAULT_SHARE * available_bytes())


def set_budget(text: str | None) -> None:
    """--memory-budget: checked, then put in the environment so that workers inherit it."""
    if text is None:
        return
    os.environ[ENV] = str(parse_size(text))


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def require(nbytes: int | float, what: str) -> None:
    """Refuse `what` (e.g. "initializer 'W' of model.onnx [2, 1048576, 1048576] float32") when
    it would allocate more than the budget, before it is allocated."""
    budget = budget_bytes()
    if nbytes > budget:
        how = "--memory-budget" if os.environ.get(ENV) else f"{DEFAULT_SHARE:.0%} of available"
        raise Refused(
            f"{what} needs {human(nbytes)}, over the memory budget of {human(budget)} ({how}): "
            "refused before allocating it; --memory-budget SIZE sets another budget"
        )


def elements_bytes(shape, itemsize: int) -> int:
    """The bytes an array of `shape` takes; a negative dimension counts as refused (inf)."""
    total = itemsize
    for dim in shape:
        dim = int(dim)
        if dim < 0:
            return 2**63
        total *= dim
    return total
