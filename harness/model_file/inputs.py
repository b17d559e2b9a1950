"""`--inputs`: the values a model file is run on, as a user brings them. Accepted:
- an ONNX test-data folder: input_*.pb TensorProtos (named, or in graph-input order) and, where
  they exist, output_*.pb: the outputs the file shipped with, compared too;
- a folder holding test_data_set_* folders (ONNX's node-test layout): every data set;
- an .npz keyed by graph input name (or one array, or key "x", for a model with one input).
Anything else is one line naming the accepted forms. Every size they declare is held to the
memory budget before it is allocated: an .npz member's inflated size and its .npy header's
shape and dtype (harness/files/archive.py), a TensorProto's dims and its data
(harness/onnx/sizes.py)."""

from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

import numpy as np

from harness.files import limits
from harness.files.archive import read_npz
from harness.model.errors import BadInput as UsageError

ACCEPTED = (
    "an ONNX test-data folder (input_*.pb, optionally output_*.pb), a folder of "
    "test_data_set_* folders, or an .npz keyed by graph input name"
)


@dataclasses.dataclass
class DataSet:
    name: str  # the folder or file it came from
    inputs: dict[str, np.ndarray]  # by graph input name ("" keys: by position, see named)
    outputs: dict[str, np.ndarray]  # shipped outputs by graph output name


def read_inputs(path, input_names: list[str], output_names: list[str]) -> list[DataSet]:
    """The data sets at `path`, each input keyed by the model's graph input name."""
    path = Path(path)
    if path.is_dir():
        sets = sorted(p for p in path.iterdir() if re.fullmatch(r"test_data_set_\d+", p.name))
        folders = sets or [path]
        return [_pb_folder(f, input_names, output_names) for f in folders]
    if path.suffix == ".npz" and path.is_file():
        return [_npz(path, input_names)]
    raise UsageError(f"--inputs {path}: not found or not a kind it reads: allowed {ACCEPTED}")


def _pb_folder(folder: Path, input_names, output_names) -> DataSet:
    inputs = _tensors(folder, "input", input_names)
    if not inputs:
        raise UsageError(f"--inputs {folder}: holds no input_*.pb: allowed {ACCEPTED}")
    return DataSet(str(folder), inputs, _tensors(folder, "output", output_names))


def _tensors(folder: Path, kind: str, names: list[str]) -> dict[str, np.ndarray]:
    from onnx import TensorProto

    from harness.onnx import sizes
    from harness.onnx.values import to_array

    files = sorted(folder.glob(f"{kind}_*.pb"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    out = {}
    for position, file in enumerate(files):
        tensor = TensorProto()
        limits.require(file.stat().st_size, f"--inputs {file} (the file, read whole)")
        try:
            tensor.ParseFromString(file.read_bytes())
        except Exception as exc:
            raise UsageError(f"--inputs {file}: not a TensorProto ({exc})") from None
        where = f"--inputs {file}"
        value = to_array(
            tensor, sizes.describe("tensor", tensor.name, tensor.dims, tensor.data_type, where)
        )
        name = tensor.name or (names[position] if position < len(names) else "")
        if name not in names:
            raise UsageError(
                f"--inputs {file}: names {name or 'no tensor'}, which is not a graph {kind} of "
                f"the model: allowed {', '.join(names)}"
            )
        out[name] = value
    return out


def _npz(path: Path, input_names: list[str]) -> DataSet:
    try:
        arrays = read_npz(path, f"--inputs {path}")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"--inputs {path}: not a readable .npz ({exc})") from None
    if len(input_names) == 1 and len(arrays) == 1:
        return DataSet(str(path), {input_names[0]: next(iter(arrays.values()))}, {})
    unknown = sorted(set(arrays) - set(input_names))
    if unknown:
        raise UsageError(
            f"--inputs {path}: key {unknown[0]!r} is not a graph input of the model: allowed "
            f"{', '.join(input_names)}"
        )
    return DataSet(str(path), arrays, {})
