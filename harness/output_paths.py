"""Where rnnbench will write, checked before any work: a path a file (or a folder of files) can
be written to by this process, or one line saying why not. Nothing is created by the check (a
scratch file is made and removed in the nearest folder that exists)."""

from __future__ import annotations

import dataclasses
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from harness.model.errors import BadInput


class OutputPathError(BadInput):
    """A path rnnbench was asked to write that it cannot, or must not, write."""


def check_file(path: str | Path, what: str) -> None:
    """Refuse a path where a file is to be written atomically (harness/atomic.py: a new file
    replaces the path): a folder, a link, a device or a pipe (which the file would replace), a
    read-only file, a folder that cannot be made or written in. `what`: the flag or the kind of
    file, for the message."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file() and not path.is_dir()):
        raise OutputPathError(
            f"cannot write {what} {path}: it is a link, a device or a pipe, which the file "
            "would replace: allowed a regular file or a new path"
        )
    if path.is_dir():
        raise OutputPathError(
            f"cannot write {what} {path}: it is a folder: allowed the path of a file in it or "
            "elsewhere"
        )
    if path.is_file() and not path.stat().st_mode & stat.S_IWUSR:
        raise OutputPathError(f"cannot write {what} {path}: it is read-only")
    _check_folder_writable(path.parent, what, path)


def check_folder(path: str | Path, what: str, files: Iterable[str] = ()) -> None:
    """Refuse a folder to be written into (made if missing): a file, a device or a pipe, one
    that cannot be made or written in; and each of `files` in it as check_file does."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(
            f"cannot write {what} {path}: it is not a folder (a file, a device or a pipe): "
            "allowed a folder or a new path"
        )
    _check_folder_writable(path, what, path)
    for name in files:
        check_file(path / name, what)


def check_replaced_folder(
    path: str | Path, what: str, files: Iterable[str], folders: Iterable[str] = ()
) -> None:
    """Refuse a folder rnnbench replaces whole (harness/atomic_folder.py: a new folder made
    beside it takes its place) where check_folder would refuse it, and also: a link; a folder
    holding anything but `files` (each a regular file) and `folders` (each a folder of regular
    files), which the swap would lose; a place beside it where the new folder cannot be made."""
    path = Path(path)
    if path.is_symlink():
        raise OutputPathError(
            f"cannot write {what} {path}: it is a link: allowed a folder of its own or a new path"
        )
    if not path.resolve().name:
        raise OutputPathError(f"cannot write {what} {path}: allowed a folder of its own")
    check_folder(path, what)
    files, folders = set(files), set(folders)
    foreign = []
    for entry in sorted(path.iterdir()) if path.is_dir() else []:
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and _plain(entry):
            continue  # a temporary file an earlier version left
        if entry.name in files and not _plain(entry):
            check_file(entry, what)  # a folder, a link, a device or a pipe where it writes
        elif entry.name in folders and (entry.is_symlink() or not entry.is_dir()):
            raise OutputPathError(f"cannot write {what} {entry}: it is not a folder")
        elif entry.name in folders:
            foreign += [f"{entry.name}/{c.name}" for c in entry.iterdir() if not _plain(c)]
        elif entry.name not in files | folders:
            foreign.append(entry.name)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise OutputPathError(
            f"cannot write {what} {path}: it holds {foreign[0]!r}{more}, which rnnbench does not "
            "write there: the folder is replaced whole, so give it a folder of its own"
        )
    _check_folder_writable(path.parent, what, path)


def _plain(entry: Path) -> bool:
    return entry.is_file() and not entry.is_symlink()


def _check_folder_writable(folder: Path, what: str, path: Path) -> None:
    """The nearest folder of `folder` that exists is one, and a file can be made in it."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: nothing can be made through it
            break
        existing = existing.parent
    made = "" if existing == folder else f", where {folder} would be made"
    if not existing.is_dir():
        raise OutputPathError(f"cannot write {what} {path}: {existing} is not a folder{made}")
    try:
        fd, scratch = tempfile.mkstemp(prefix=".rnnbench-", suffix=".check", dir=existing)
        os.close(fd)
        os.unlink(scratch)
    except OSError as exc:
        raise OutputPathError(
            f"cannot write {what} {path}: no file can be made in {existing}{made} "
            f"({exc.strerror or exc})"
        ) from None


@dataclasses.dataclass(frozen=True)
class Output:
    """What a flag names: a file, or a folder and the files rnnbench writes in it (replaced:
    the folder is replaced whole, harness/atomic_folder.py, and may hold its folders too)."""

    folder: bool = False
    files: tuple[str, ...] = ()
    replaced: bool = False
    folders: tuple[str, ...] = ()

    def check(self, path: str | Path, what: str) -> None:
        if self.replaced:
            check_replaced_folder(path, what, self.files, self.folders)
        elif self.folder:
            check_folder(path, what, self.files)
        else:
            check_file(path, what)


FILE = Output()


def folder(*files: str) -> Output:
    return Output(True, files)


def replaced_folder(files: tuple[str, ...], folders: tuple[str, ...] = ()) -> Output:
    """A folder replaced whole, holding only `files` and `folders` of files."""
    return Output(True, files, replaced=True, folders=folders)
