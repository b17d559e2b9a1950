"""What every command shares: the one-line usage error, the comma-list check and the memory
budget a model file is held to."""

from __future__ import annotations

from harness.model.errors import BadInput
from harness.terminal import progress

__all__ = ["UsageError", "check_outputs", "names", "progress", "require"]


class UsageError(BadInput):
    """Bad command-line input; main prints it on one line and exits 2."""


def require(packages: dict[str, str], extra: str, what: str) -> None:
    """A UsageError naming the missing ones of `packages` (import name -> pip name) and the
    extra that installs them, before anything is read or written."""
    import importlib.util

    missing = [pip for module, pip in packages.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(
            f"{what} needs {', '.join(missing)}, not installed: pip install 'rnnbench[{extra}]'"
        )


def check_outputs(args) -> None:
    """Every path the command will write, checked before any work (harness/output_paths.py):
    args.outputs maps a flag's dest to what it names (a file, or a folder and its files)."""
    for dest, output in getattr(args, "outputs", {}).items():
        value = getattr(args, dest, None)
        if value:
            output.check(value, "--" + dest.replace("_", "-"))


def names(text: str, allowed, what: str) -> tuple[str, ...]:
    items = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in items:
        if name not in allowed:
            raise UsageError(f"unknown {what} {name!r}: allowed {', '.join(allowed)}")
    return items


def add_memory_budget(parser) -> None:
    """--memory-budget, on every command that reads a model file."""
    from harness.files import limits

    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="the most a model file (and what it declares: tensors, archive members, "
        "--inputs arrays) may make rnnbench allocate, e.g. 2G or 512M; a file over it is "
        f"refused before anything is allocated (default: {limits.DEFAULT_SHARE * 100:.0f}%% of "
        f"the memory available at start, or {limits.ENV})",
    )


def apply_memory_budget(args) -> None:
    """--memory-budget set before anything is read (worker processes inherit it)."""
    from harness.files import limits

    text = getattr(args, "memory_budget", None)
    try:
        limits.set_budget(text)
    except ValueError:
        raise UsageError(f"--memory-budget {text}: allowed {limits.ALLOWED}") from None
