"""Tampered copies of a genuine .pt2 (torch.export.save) for tests/test_pt2_safety.py: a pickle
payload in each member a torch archive may unpickle, code in each field torch's deserializer
evaluates, and zip bombs. Archives are written by a small zip writer of their own, so that a
header can declare what its member does not hold. Every payload, run, creates the marker file."""

from __future__ import annotations

import dataclasses
import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

GIB = 2**30


class Touch:
    """Unpickled, it opens (creates) the marker file: a pickle that runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload(marker) -> bytes:
    return pickle.dumps(Touch(marker), protocol=2)


@dataclasses.dataclass
class Entry:
    """A member as written: its bytes as stored (compressed for deflate), and the uncompressed
    size its headers declare (its true size unless given)."""

    data: bytes
    method: int = zipfile.ZIP_STORED
    size: int | None = None


def read_members(path) -> tuple[str, dict[str, bytes]]:
    """(the archive's folder, its members by name below that folder)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/", 1)[0]
        return root, {n[len(root) + 1 :]: archive.read(n) for n in names}


def write_zip(path, entries: dict[str, Entry | bytes]) -> Path:
    """A zip of `entries` (full names), each header declaring Entry.size."""
    local, central = bytearray(), bytearray()
    for name, entry in entries.items():
        entry = entry if isinstance(entry, Entry) else Entry(entry)
        raw = name.encode()
        size = len(entry.data) if entry.size is None else entry.size
        crc = zlib.crc32(entry.data) if entry.method == zipfile.ZIP_STORED else 0
        fields = (entry.method, 0, 0, crc, len(entry.data), size, len(raw))
        offset = len(local)
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, *fields, 0) + raw + entry.data
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, *fields, 0, 0, 0, 0, 0, offset
        )
        central += raw
    n = len(entries)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(local), 0)
    Path(path).write_bytes(bytes(local + central + end))
    return Path(path)


def zeros_deflated(gib: int = 1) -> bytes:
    """Raw deflate of `gib` GiB of zeros, about 1 MB: one full-flushed 16 MiB block repeated
    (a full flush resets the compressor, so the blocks are alike) and a final empty block."""
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = block.compress(bytes(2**24)) + block.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return chunk * (64 * gib) + final


def _program(files) -> dict:
    return json.loads(files["models/model.json"])


def _node(program, suffix: str) -> dict:
    return next(
        n for n in program["graph_module"]["graph"]["nodes"] if n["target"].endswith(suffix)
    )


def _constant(files, path_name: str, marker) -> None:
    """A constant entry whose member is the payload (a config may list what the graph never
    uses: it is refused all the same)."""
    weights = json.loads(files["data/weights/model_weights_config.json"])["config"]
    meta = next(iter(weights.values()))["tensor_meta"]
    config = json.loads(files["data/constants/model_constants_config.json"])
    config["config"]["c_lifted"] = {
        "path_name": path_name,
        "is_param": False,
        "use_pickle": True,
        "tensor_meta": meta,
    }
    files["data/constants/model_constants_config.json"] = json.dumps(config).encode()
    files[f"data/constants/{path_name}"] = payload(marker)


def tamper(genuine, out, case: str, marker, bomb: bytes = b"") -> Path:
    """A copy of `genuine` tampered as `case` (one of CASES) says."""
    root, files = read_members(genuine)
    if case == "legacy-format":  # the format before the archive: its weights are one pickle
        return write_zip(
            out,
            {
                "serialized_exported_program.json": files["models/model.json"],
                "serialized_state_dict.pt": payload(marker),
                "serialized_constants.pt": payload(marker),
                "serialized_example_inputs.pt": payload(marker),
                "version": b"8.20",
            },
        )
    files = {k: v for k, v in files.items()}
    program = _program(files)
    weights = json.loads(files["data/weights/model_weights_config.json"])
    first = weights["config"]["rnn.weight_ih_l0"]
    weight = f"data/weights/{first['path_name']}"
    if case == "sample-inputs-pickle":
        files["data/sample_inputs/model.pt"] = payload(marker)
    elif case == "weight-use-pickle":
        first["use_pickle"] = True
        files[weight] = payload(marker)
    elif case == "constant-use-pickle":
        _constant(files, "tensor_0", marker)
    elif case == "torchbind-constant":
        _constant(files, "custom_obj_0", marker)
    elif case.startswith("target-"):
        _node(program, "linear.default")["target"] = TARGETS[case]
    elif case == "sympy-expression":
        values = program["graph_module"]["graph"]["sym_int_values"]
        expression = next(iter(values.values()))["as_expr"]
        expression["expr_str"] = f"open({str(marker)!r}, 'w') and {expression['expr_str']}"
    elif case == "guards-code":
        program["guards_code"] = [f"open({str(marker)!r}, 'w') is not None"]
    elif case == "name-injection":
        _node(program, "linear.default")["name"] = f"linear=open({str(marker)!r}, 'w')"
    elif case == "zip-bomb":
        files["data/sample_inputs/model.pt"] = Entry(bomb, zipfile.ZIP_DEFLATED, GIB)
    elif case == "lying-header":
        files[weight] = Entry(bomb, zipfile.ZIP_DEFLATED, len(files[weight]))
    elif case == "declared-beyond-deflate":
        files[weight] = Entry(zlib.compress(files[weight])[2:-4], zipfile.ZIP_DEFLATED, 2**32 - 2)
    elif case == "absurd-name":
        files["../../outside"] = b"x"
    elif case == "member-count":  # the end record declares 60000 members; the file holds 20
        written = write_zip(out, {f"{root}/{name}": data for name, data in files.items()})
        data = bytearray(written.read_bytes())
        data[-14:-10] = struct.pack("<2H", 60_000, 60_000)
        written.write_bytes(bytes(data))
        return written
    else:
        raise ValueError(case)
    files["models/model.json"] = json.dumps(program).encode()
    files["data/weights/model_weights_config.json"] = json.dumps(weights).encode()
    return write_zip(out, {f"{root}/{name}": data for name, data in files.items()})


TARGETS = {
    "target-builtins-eval": "builtins.eval",
    "target-os-system": "os.system",
    "target-torch-callable": "torch.hub.load",  # a target torch's deserializer would resolve
}

# case -> what the one-line refusal names (None: read, the payload never opened nor run)
CASES = {
    "sample-inputs-pickle": None,
    "guards-code": None,
    "weight-use-pickle": ("data/weights/weight_0", "use_pickle"),
    "constant-use-pickle": ("data/constants/tensor_0", "use_pickle"),
    "torchbind-constant": ("data/constants/custom_obj_0", "torchbind"),
    "target-builtins-eval": ("builtins.eval", "allowed aten ops"),
    "target-os-system": ("os.system", "allowed aten ops"),
    "target-torch-callable": ("torch.hub.load", "allowed aten ops"),
    "sympy-expression": ("size sym_size_int_1", "torch would evaluate it"),
    "name-injection": ("linear=open(", "allowed a Python identifier"),
    "zip-bomb": ("data/sample_inputs/model.pt", "over the memory budget"),
    "lying-header": ("data/weights/weight_0", "does not hold what its header says"),
    "declared-beyond-deflate": ("data/weights/weight_0", "more than its compressed bytes"),
    "absurd-name": ("../../outside", "allowed names"),
    "member-count": ("has 60000 members", "allowed at most 20000"),
    "legacy-format": ("serialized_state_dict.pt", "never unpickled"),
}
