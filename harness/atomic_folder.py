"""A folder of files replaced whole (a report): written into a fresh folder beside the target,
then swapped in, so that a reader sees the old folder or the new one, never files of two runs.

The swap is one exchange of the two names (Linux renameat2 RENAME_EXCHANGE); elsewhere, two
renames, with the old folder kept aside in between. A run killed before its swap leaves only its
fresh folder beside the target (.NAME.PID-*.new); one killed between the two renames leaves the
old folder aside (.NAME.PID-*.old) and no target. The next run removes the first and puts the
second back, once the process that made them is gone."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.output_paths import check_replaced_folder

AT_FDCWD, RENAME_EXCHANGE = -100, 2


@contextlib.contextmanager
def replaced_folder(
    target: str | Path, what: str, files: tuple[str, ...], folders: tuple[str, ...] = ()
) -> Iterator[Path]:
    """Yield a fresh, empty folder beside `target`; when the block succeeds it becomes
    `target` (the old folder, which may hold only `files` and `folders` of files, is removed);
    when it fails, the target is as it was. what: the flag or the kind of folder, for an
    error (harness.output_paths.check_replaced_folder)."""
    target = Path(target)
    recover(target)
    check_replaced_folder(target, what, files, folders)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{os.getpid()}-"
    fresh = Path(tempfile.mkdtemp(prefix=prefix, suffix=".new", dir=target.parent))
    try:
        os.chmod(fresh, 0o777 & ~_umask())  # mkdtemp makes 0700; a report is for others too
        yield fresh
        _swap(fresh, target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)  # the fresh folder, or the old one swapped out


def _swap(fresh: Path, target: Path) -> None:
    """target's content becomes fresh's; fresh's name then holds the old content (or nothing)."""
    if not target.exists():
        os.rename(fresh, target)
        return
    if _exchange(fresh, target):
        return
    aside = fresh.with_name(fresh.name.removesuffix(".new") + ".old")
    os.rename(target, aside)
    os.rename(fresh, target)
    os.rename(aside, fresh)  # removed by the caller with what remains


def _exchange(a: Path, b: Path) -> bool:
    """Swap the two names in one step where the system can; False where it cannot."""
    try:
        rename = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a C library before glibc 2.28
        return False
    if rename(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # a file system without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def recover(target: Path) -> None:
    """Tidy what runs that died left beside `target`: their fresh folders are removed, an old
    folder set aside is put back where the target is missing (else removed)."""
    for path in sorted(target.parent.glob(f".{glob_escape(target.name)}.*-*")):
        pid, _, rest = path.name[len(target.name) + 2 :].partition("-")
        if not pid.isdigit() or _alive(int(pid)) or not path.is_dir() or path.is_symlink():
            continue
        if rest.endswith(".old") and not target.exists():
            os.rename(path, target)
        elif rest.endswith((".old", ".new")):
            shutil.rmtree(path, ignore_errors=True)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to tidy
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
