"""A Keras file's sizes, held to the memory budget before Keras reads it:

- .keras (a zip): every member's inflated size and their total (archive.py); config.json at
  most CONFIG_CAP, read by us with that cap; the weights .h5 inside checked as an .h5 file;
- .h5: every dataset's declared shape x element size (h5py reads shapes, never data) and
  every attribute's (the legacy model config is one); data kept in other files (external
  storage, virtual datasets, external links) is refused: a model file must not make rnnbench
  read other paths;
- what the model config implies: the variables (Keras builds them before it reads a weight),
  each recurrent, Dense or Embedding layer's from its units and the widest input it may have,
  and the input at the sizes a check runs it.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

from harness.files import limits
from harness.files.archive import check_members
from harness.files.limits import Refused

CONFIG_CAP = 16 * 2**20  # a model config's bytes; a recurrent model's takes a few KiB
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3, "Dense": 1, "SimpleRNNCell": 1, "LSTMCell": 4}
GATES |= {"GRUCell": 3}
ITEM = 8  # bytes per element: float64 at most
RUN_DIM = 16  # a dynamic axis at the sizes a check runs it (as harness/onnx/sizes.py)
CONFIG_KEYS = ("model_config", "training_config")


def check_keras_file(path) -> None:
    """A .keras or .h5 file within the budget (see the module), before Keras loads it."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            _check_keras_zip(archive, str(path))
        return
    limits.require(path.stat().st_size, f"{path} (the file)")
    check_h5(str(path), str(path))


def _check_keras_zip(archive: zipfile.ZipFile, label: str) -> None:
    members = {info.filename: info for info in check_members(archive, label)}
    config = members.get("config.json")
    if config is not None:
        _capped(config.file_size, f"member 'config.json' of {label}")
        with archive.open(config) as stream:
            text = stream.read(CONFIG_CAP + 1)
        _capped(len(text), f"member 'config.json' of {label}")
        check_config(text, f"the model config of {label}")
    for name, info in members.items():
        if name.endswith(".h5"):
            with archive.open(info) as stream:
                data = io.BytesIO(stream.read(info.file_size))
            check_h5(data, f"member {name!r} of {label}")


def _capped(size: int, what: str) -> None:
    if size > CONFIG_CAP:
        raise Refused(
            f"{what} is {limits.human(size)}, over the {limits.human(CONFIG_CAP)} a model config "
            "may take: refused before reading it"
        )


def check_h5(source, label: str) -> None:
    """Every dataset's and attribute's declared size within the budget, and their total;
    nothing kept in another file; the model config (an attribute) capped and bounded."""
    import h5py

    try:
        handle = h5py.File(source, "r")
    except OSError as exc:
        raise Refused(f"{label}: not a readable HDF5 file ({exc})") from None
    with handle:
        total, todo, seen = 0, [(handle, "/")], set()
        while todo:
            group, where = todo.pop()
            total += _attributes(group, where, label)
            for key in group:
                name = f"{where.rstrip('/')}/{key}"
                link = group.get(key, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    raise Refused(
                        f"{label}: {name} links to another file ({link.filename!r}): allowed "
                        "data inside the file (a model file must not make rnnbench read other "
                        "paths)"
                    )
                if not isinstance(link, h5py.HardLink):  # a soft link names a hard one
                    continue
                item = group.get(key)
                address = h5py.h5o.get_info(item.id).addr
                if address in seen:
                    continue
                seen.add(address)
                if isinstance(item, h5py.Group):
                    todo.append((item, name))
                elif isinstance(item, h5py.Dataset):
                    total += _dataset(item, name, label)
        limits.require(total, f"the datasets and attributes of {label} together")


def _dataset(item, name: str, label: str) -> int:
    described = f"dataset {name!r} of {label} {list(item.shape or ())} {item.dtype}"
    if item.is_virtual or item.external:
        raise Refused(
            f"{described} keeps its data in other files: allowed data inside the file (a model "
            "file must not make rnnbench read other paths)"
        )
    size = math.prod(item.shape or ()) * item.dtype.itemsize
    limits.require(size, described)
    return size + _attributes(item, name, label)


def _attributes(item, where: str, label: str) -> int:
    """The attributes' declared sizes (a variable-length string's bytes, kept in the file
    uncompressed, are bounded by the file's size); a model config is capped and bounded."""
    total = 0
    for key in item.attrs:
        attr = item.attrs.get_id(key)
        described = f"attribute {key!r} of {where} in {label} {list(attr.shape or ())} {attr.dtype}"
        size = math.prod(attr.shape or ()) * attr.dtype.itemsize
        limits.require(size, described)
        total += size
        if key in CONFIG_KEYS and where == "/":
            text = item.attrs[key]
            text = text.encode() if isinstance(text, str) else bytes(text)
            _capped(len(text), described)
            if key == "model_config":
                check_config(text, f"the model config of {label}")
    return total


def check_config(text: bytes, label: str) -> None:
    """The variables a Keras model config implies, within the budget: per layer with units
    (SimpleRNN, LSTM, GRU, Dense, also inside Bidirectional) G*units*(width + units + 2)
    elements, width being the widest input any layer may have; an Embedding's
    input_dim*output_dim."""
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Refused(f"{label} is not JSON ({str(exc)[:100]})") from None
    layers = list(_layer_configs(config))
    for _, conf in layers:  # an input at the sizes a check runs it (x in float64)
        for shape in _input_shapes(conf):
            dims = [RUN_DIM if d is None else _int(d) for d in shape]
            limits.require(
                ITEM * math.prod(dims),
                f"input {conf.get('name', '?')!r} in {label} {shape} (at the sizes a check runs "
                f"it, a dynamic axis as {RUN_DIM}, in float64)",
            )
    widths = [_int(s[-1]) for _, c in layers for s in _input_shapes(c) if s[-1] is not None]
    units = [_int(c.get("units", 0)) for kind, c in layers if kind in GATES]
    width = max(widths + [2 * u for u in units] + [1])
    total = 0
    for kind, conf in layers:
        if kind in GATES:
            u = _int(conf.get("units", 0))
            size = ITEM * GATES[kind] * u * (width + u + 2)
        elif kind == "Embedding":
            size = ITEM * _int(conf.get("input_dim", 0)) * _int(conf.get("output_dim", 0))
        else:
            continue
        name = conf.get("name", "?")
        limits.require(size, f"the variables of {kind} layer {name!r} in {label}")
        total += size
    limits.require(total, f"the variables {label} implies, together")


def _layer_configs(config):
    """(class_name, config) of every layer object in a Keras config, nested ones too."""
    todo = [config]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str) and isinstance(item.get("config"), dict):
                yield item["class_name"], item["config"]
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


def _input_shapes(conf: dict) -> list[list]:
    """The input shapes a layer config declares (batch axis included)."""
    shapes = []
    for key in ("batch_shape", "batch_input_shape"):
        shape = conf.get(key)
        if isinstance(shape, list) and shape:
            shapes.append(shape)
    return shapes


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Refused(f"a size {value!r} in a Keras model config: allowed integers >= 0")
    return value
