"""Zip archives a user hands rnnbench (.npz arrays, .keras models), held to the memory budget
(harness/files/limits.py) before any member is inflated: each member's declared size and
all of them together (a 1 MB archive may inflate to gigabytes), and each .npy member's header
(shape, dtype) against that size, before numpy allocates what the header says. zipfile never
inflates a member past its declared size, so the declared sizes bound what is read."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from harness.files import limits
from harness.files.limits import Refused


def check_members(archive: zipfile.ZipFile, label: str) -> list[zipfile.ZipInfo]:
    """Each member's declared (inflated) size, and their total, within the budget."""
    members = archive.infolist()
    for info in members:
        limits.require(info.file_size, f"member {info.filename!r} of {label} (inflated)")
    total = sum(info.file_size for info in members)
    limits.require(total, f"the {len(members)} members of {label} together (inflated)")
    return members


def npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str):
    """(shape, dtype) a .npy member declares, read from its header alone (None when it has no
    .npy header: numpy's reading says so); Refused when the array it declares is over the
    budget, holds Python objects, or is not what the member holds (corrupt)."""
    what = f"array {info.filename.removesuffix('.npy')!r} of {label}"
    with archive.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            offset = stream.tell()
        except (ValueError, OSError, EOFError, zipfile.BadZipFile):
            return None
    described = f"{what} {list(shape)} {dtype}"
    if dtype.hasobject:
        raise Refused(f"{described} holds Python objects: allowed numeric arrays (never unpickled)")
    size = math.prod(shape) * dtype.itemsize
    limits.require(size, described)
    if offset + size != info.file_size:
        raise Refused(
            f"{described} says {size} bytes where the member holds {info.file_size - offset}: "
            "the archive is corrupt"
        )
    return shape, dtype


def check_npz(path, label: str | None = None) -> None:
    """An .npz's members and each array's header within the budget, before np.load. A file
    that is not a zip raises what zipfile raises (OSError, BadZipFile), as np.load would."""
    label = label or str(path)
    with zipfile.ZipFile(path) as archive:
        for info in check_members(archive, label):
            if info.filename.endswith(".npy"):
                npy_header(archive, info, label)


def check_npy(path, label: str | None = None) -> None:
    """A .npy file's header (shape, dtype) within the budget and equal to what the file
    holds, before np.load allocates what it says."""
    label = label or str(path)
    with open(path, "rb") as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        except (ValueError, OSError, EOFError):
            return  # not a .npy: numpy's reading says so
        offset = stream.tell()
    described = f"{label} {list(shape)} {dtype}"
    size = math.prod(shape) * dtype.itemsize
    limits.require(size, described)
    held = Path(path).stat().st_size - offset
    if not dtype.hasobject and size != held:
        raise Refused(f"{described} says {size} bytes where the file holds {held}: it is corrupt")


def read_npz(path, label: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz, by key, its sizes checked first (check_npz); never unpickled."""
    check_npz(path, label)
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}
