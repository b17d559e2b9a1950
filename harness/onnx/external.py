"""Tensors an exporter keeps in a file beside the model (torch.onnx's dynamo exporter writes
`model.onnx.data` by default): brought into the model before anything else reads it, each
checked first, so that a model file still never makes rnnbench read anywhere but its own folder
or allocate past the memory budget:

- the location is a plain file name in the model's own folder (no folder part, no "..", no
  drive), a regular file there and not a link;
- the offset and length lie inside that file, and the length is what the tensor's dims and
  element type say;
- every size, and their total, is held to the budget (harness/files/limits.py).
Anything else is refused naming the tensor and where it points."""

from __future__ import annotations

import os
from pathlib import Path

from harness.files import limits
from harness.files.limits import Refused

EXTERNAL = 1  # TensorProto.EXTERNAL
DEFAULT = 0  # TensorProto.DEFAULT


def inline_sidecars(model, path) -> int:
    """Move every externally kept initializer of `model` (read from `path`) into it; the
    number moved."""
    folder = Path(path).resolve().parent
    moved, total = 0, 0
    for tensor in model.graph.initializer:
        if tensor.data_location != EXTERNAL and not len(tensor.external_data):
            continue
        total += _inline(tensor, folder, path, total)
        moved += 1
    return moved


def _inline(tensor, folder: Path, path, so_far: int) -> int:
    from harness.onnx.sizes import describe, nbytes

    what = describe("initializer", tensor.name, tensor.dims, tensor.data_type, str(path))
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    allowed = "a file beside the model, named without a folder"
    plain = location and os.path.basename(location) == location and location not in (".", "..")
    if not plain or "\\" in location or ":" in location:
        raise Refused(f"{what} keeps its data at {location!r}: allowed {allowed}")
    sidecar = folder / location
    if sidecar.is_symlink() or not sidecar.is_file():
        raise Refused(f"{what} keeps its data in {location!r}, not a regular file beside it")
    size = nbytes(tensor.dims, tensor.data_type)
    limits.require(size, what)
    limits.require(so_far + size, f"the tensors {path} keeps beside it, together")
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", size))
    except ValueError:
        raise Refused(
            f"{what}: its offset or length is not an integer: the file is corrupt"
        ) from None
    if length != size or offset < 0 or offset + length > sidecar.stat().st_size:
        raise Refused(
            f"{what}: {length} bytes at offset {offset} of {location!r} "
            f"({sidecar.stat().st_size} bytes) where its dims say {size}: the file is corrupt"
        )
    with sidecar.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    if len(data) != length:
        raise Refused(f"{what}: {location!r} ends before its data: the file is corrupt")
    tensor.raw_data = data
    tensor.data_location = DEFAULT
    del tensor.external_data[:]
    return size
