"""A torch .pt2 archive (torch.export.save) opened member by member with zipfile, never with
torch's loader: torch.export.load unpickles data/sample_inputs/*.pt, every weight or constant
whose config says use_pickle, torchbind and opaque constants and an older archive's weights,
and loads AOTInductor's compiled code where an archive holds some.

- Before anything is decompressed, every member is checked: a member count or a name that is
  absurd (control characters, '..', an absolute path, outside the archive's one folder), a
  method other than stored or deflate, encryption, a declared size over the memory budget
  (each, and all together) or over what its compressed bytes can hold, and members that share
  bytes (an overlapping zip bomb) are refused naming the member.
- A member is read with a hard cap at its declared size: a header that lies is a CRC failure,
  refused naming it.
- Read: archive_format, archive_version, byteorder, models/<name>.json, and each
  data/{weights,constants}/<name>_*_config.json with the raw members it names, each tensor built
  from its bytes as its config says (dtype, sizes, strides, storage offset), its size checked
  against the budget before allocating.
- Never opened: data/sample_inputs/* (a pickle of the example inputs), extra/*,
  data/aotinductor/* (compiled code), anything else.
- Refused naming the member: an entry whose config says use_pickle, a torchbind or opaque
  constant (custom_obj_*, opaque_obj_*: both pickles), an older format's pickled weights."""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
import zipfile
import zlib

import torch

from harness.files import limits
from harness.files.limits import Refused
from harness.model.protocol import NotSupported

MAX_MEMBERS = 20_000  # a .pt2 holds a member per stored tensor, and a dozen more
MAX_NAME = 512
MAX_JSON = 256 * 2**20  # one program's serialized graph; a real one is kilobytes
MAX_TEXT = 64  # archive_format, archive_version, byteorder
# Deflate's best is one 258-byte match per 2 bits: a member inflates at most 1032-fold.
DEFLATE_MAX_RATIO = 1032
CHUNK = 2**20
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
FQN = re.compile(rf"(?:{IDENTIFIER}|\d+)(?:\.(?:{IDENTIFIER}|\d+))*\Z")
MODEL_JSON = re.compile(rf"models/({IDENTIFIER})\.json\Z")
LEGACY = "serialized_exported_program.json"  # the format before the archive (torch < 2.8)
PICKLED_PREFIXES = {
    "custom_obj_": "a torchbind object (torch's pickle)",
    "opaque_obj_": "an opaque Python object (a pickle)",
}
PAYLOAD_PREFIX = {"weights": "weight_", "constants": "tensor_"}
# What a tensor's config may say its dtype is (torch's ScalarType numbers).
DTYPES = {
    1: torch.uint8,
    2: torch.int8,
    3: torch.int16,
    4: torch.int32,
    5: torch.int64,
    6: torch.float16,
    7: torch.float32,
    8: torch.float64,
    12: torch.bool,
    13: torch.bfloat16,
}
STRIDED = 7  # torch's Layout number for a dense tensor


class NotAnArchive(Exception):
    """Not a .pt2 archive: another reader may take the file."""


def shown(name) -> str:
    """A name from the file, quoted and escaped for one line, at most 80 characters."""
    text = repr(str(name))
    return text if len(text) <= 80 else text[:77] + "..."


class Pt2Archive:
    """The members of one .pt2 file, each checked before anything is decompressed."""

    def __init__(self, path):
        self.path = str(path)
        count = _member_count(self.path)
        if count > MAX_MEMBERS:
            raise Refused(f"{self.path} has {count} members: allowed at most {MAX_MEMBERS}")
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise NotAnArchive(f"not a zip archive ({exc})") from None
        try:
            self._check(infos)
        except BaseException:
            self._zip.close()
            raise

    def _check(self, infos) -> None:
        """Which members the archive holds, each checked; the one program it holds."""
        names = [info.filename for info in infos]
        if LEGACY in names:
            raise Refused(
                f"{self.path} is an older torch.export.save format, whose weights are one "
                "pickle (serialized_state_dict.pt): refused, never unpickled; allowed a .pt2 "
                "saved by torch 2.8 or later"
            )
        root = names[0].split("/", 1)[0] if names and "/" in names[0] else ""
        if not root or f"{root}/archive_format" not in names:
            raise NotAnArchive("no archive_format member")
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            _check_name(self.path, name, root)
            relative = name[len(root) + 1 :]
            if relative in self.members:
                raise Refused(f"{self.path} holds member {shown(name)} twice: refused")
            self.members[relative] = info
        self._check_sizes()
        if self.text("archive_format") != "pt2":
            raise NotAnArchive("its archive_format is not pt2")
        self._check_header()
        models = [m[1] for n in self.members if (m := MODEL_JSON.match(n))]
        if len(models) != 1:
            raise NotSupported(
                f"{self.path} holds {len(models)} exported programs (models/*.json): allowed one"
            )
        self.model = models[0]

    def __enter__(self) -> Pt2Archive:
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()

    def _check_sizes(self) -> None:
        total = compressed = 0
        for name, info in self.members.items():
            what = f"{self.path}: member {shown(name)}"
            if info.flag_bits & 0x1:
                raise Refused(f"{what} is encrypted: refused")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Refused(
                    f"{what} is compressed by method {info.compress_type}: allowed stored or "
                    "deflate"
                )
            stored = info.compress_type == zipfile.ZIP_STORED
            if (stored and info.file_size != info.compress_size) or (
                info.file_size > DEFLATE_MAX_RATIO * max(info.compress_size, 1)
            ):
                raise Refused(
                    f"{what} declares {limits.human(info.file_size)} from "
                    f"{limits.human(info.compress_size)}, more than its compressed bytes can "
                    "hold (a zip bomb, or a header that lies): refused before decompressing"
                )
            limits.require(info.file_size, what)
            total += info.file_size
            compressed += info.compress_size
        limits.require(total, f"{self.path}: its {len(self.members)} members together")
        if compressed > os.path.getsize(self.path):
            raise Refused(
                f"{self.path}: its members hold {limits.human(compressed)} compressed, more than "
                "the file: members share bytes (an overlapping zip bomb): refused"
            )

    def _check_header(self) -> None:
        version = self.text("archive_version") if "archive_version" in self.members else "0"
        if version != "0":
            raise NotSupported(f"{self.path}: archive_version {shown(version)}: allowed 0")
        order = self.text("byteorder") if "byteorder" in self.members else "little"
        if order != "little":
            raise NotSupported(
                f"{self.path}: its tensors are {shown(order)}-endian: allowed little-endian"
            )

    def read(self, name: str, cap: int | None = None) -> bytearray:
        """A member's bytes, never more than it declares (nor than cap)."""
        info = self.members.get(name)
        if info is None:
            raise NotSupported(f"{self.path} has no member {shown(name)}")
        size = info.file_size
        what = f"{self.path}: member {shown(name)}"
        if cap is not None and size > cap:
            raise Refused(f"{what} declares {limits.human(size)}: allowed {limits.human(cap)}")
        out = bytearray(size)
        got = 0
        try:
            with self._zip.open(info) as handle:
                while got < size:
                    chunk = handle.read(min(CHUNK, size - got))
                    if not chunk:
                        break
                    out[got : got + len(chunk)] = chunk
                    got += len(chunk)
                beyond = handle.read(1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
            NotImplementedError,
        ) as exc:
            raise Refused(f"{what} does not hold what its header says ({exc}): refused") from None
        if got != size or beyond:
            raise Refused(f"{what} does not hold the {size} bytes its header says: refused")
        return out

    def text(self, name: str) -> str:
        try:
            return self.read(name, MAX_TEXT).decode("ascii").strip()
        except UnicodeDecodeError:
            raise NotSupported(f"{self.path}: member {shown(name)} is not text") from None

    def json(self, name: str):
        data = self.read(name, MAX_JSON)
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            problem = str(exc).splitlines()[0][:80] if str(exc) else "nested too deeply"
            what = f"{self.path}: member {shown(name)}"
            raise NotSupported(f"{what} is not JSON ({problem})") from None

    def tensors(self, kind: str) -> dict[str, torch.Tensor]:
        """The program's weights or constants (kind), each built from its raw member as its
        config says; an entry that would need unpickling is refused naming its member."""
        folder = f"data/{kind}/"
        legacy = f"{folder}{self.model}.pt"
        if legacy in self.members:
            raise Refused(
                f"{self.path}: member {shown(legacy)} holds its {kind} as one pickle (an older "
                "torch.export.save): refused, never unpickled; allowed a .pt2 saved by torch 2.8 "
                "or later"
            )
        config_name = f"{folder}{self.model}_{kind}_config.json"
        document = self.json(config_name)
        entries = document.get("config") if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            raise NotSupported(f"{self.path}: {shown(config_name)} has no config table")
        storages: dict[str, bytearray] = {}
        tensors, total = {}, 0
        for fqn, entry in entries.items():
            tensor = self._tensor(folder, kind, fqn, entry, storages)
            total += tensor.numel() * tensor.element_size()
            limits.require(total, f"{self.path}: its {kind} together")
            tensors[fqn] = tensor
        return tensors

    def _tensor(self, folder, kind, fqn, entry, storages) -> torch.Tensor:
        if not isinstance(fqn, str) or len(fqn) > MAX_NAME or not FQN.match(fqn):
            raise Refused(f"{self.path}: {kind} entry {shown(fqn)}: allowed a dotted Python name")
        entry = entry if isinstance(entry, dict) else {}
        path_name = entry.get("path_name")
        if not isinstance(path_name, str):
            raise NotSupported(f"{self.path}: {kind} entry {shown(fqn)} names no member")
        member = folder + path_name
        what = f"{self.path}: member {shown(member)} ({kind[:-1]} {shown(fqn)})"
        for prefix, holds in PICKLED_PREFIXES.items():
            if path_name.startswith(prefix):
                raise Refused(f"{what} is {holds}: refused, never unpickled")
        if entry.get("use_pickle") is not False:
            raise Refused(f"{what}: its config says use_pickle: refused, never unpickled")
        prefix = PAYLOAD_PREFIX[kind]
        if not re.fullmatch(rf"{prefix}\d+", path_name):
            raise NotSupported(f"{what}: allowed a member named {prefix}N")
        dtype, sizes, strides, offset, requires_grad = _payload_meta(entry.get("tensor_meta"), what)
        view_bytes = limits.elements_bytes(sizes, dtype.itemsize)
        limits.require(view_bytes, f"{what} {sizes} {str(dtype).removeprefix('torch.')}")
        if path_name not in storages:
            storages[path_name] = self.read(member)
        storage = storages[path_name]
        if not storage:  # torch saves a payload it has no data for (a fake tensor) as empty
            tensor = torch.zeros(sizes, dtype=dtype)
        else:
            if len(storage) % dtype.itemsize:
                raise NotSupported(f"{what}: {len(storage)} bytes are not {dtype} elements")
            flat = torch.frombuffer(storage, dtype=dtype)  # shares the bytes: no copy
            if math.prod(sizes):
                last = offset + sum((s - 1) * st for s, st in zip(sizes, strides, strict=True))
                if last >= flat.numel():
                    raise NotSupported(
                        f"{what}: sizes {sizes}, strides {strides} and offset {offset} reach "
                        f"element {last} of {flat.numel()}"
                    )
            tensor = flat.as_strided(sizes, strides, offset)
        if entry.get("is_param") is True:
            return torch.nn.Parameter(tensor, requires_grad=requires_grad)
        return tensor


def _member_count(path: str) -> int:
    """The entry count the end-of-central-directory record declares, read before zipfile
    builds an object per entry."""
    try:
        with open(path, "rb") as handle:
            # zipfile's own reader of the record (zip64 included); private, stable since 2.x
            end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]  # private, stable
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise NotAnArchive(str(exc)) from None
    if end is None:
        raise NotAnArchive("not a zip archive")
    return int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]  # private, stable


def _check_name(path: str, name: str, root: str) -> None:
    parts = name.split("/")
    absurd = (
        len(name) > MAX_NAME
        or not name.startswith(root + "/")
        or "\\" in name
        or ".." in parts
        or any(unicodedata.category(c)[0] == "C" for c in name)
    )
    if absurd:
        raise Refused(
            f"{path}: member {shown(name)}: allowed names of at most {MAX_NAME} printable "
            f"characters under the archive's folder {shown(root + '/')}, without '..' or '\\'"
        )


def _payload_meta(meta, what):
    """(dtype, sizes, strides, storage offset, requires_grad) of a payload's tensor_meta."""
    if not isinstance(meta, dict):
        raise NotSupported(f"{what}: its config has no tensor_meta")
    code = meta.get("dtype")
    dtype = DTYPES.get(code) if type(code) is int else None
    if dtype is None:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in DTYPES.values())
        raise NotSupported(f"{what}: dtype {shown(meta.get('dtype'))}: allowed {allowed}")
    device = meta.get("device")
    if not isinstance(device, dict) or device.get("type") != "cpu":
        kind = device.get("type") if isinstance(device, dict) else device
        raise NotSupported(f"{what} is on {shown(kind)}: allowed a program exported on the CPU")
    if meta.get("layout") != STRIDED:
        raise NotSupported(f"{what}: layout {shown(meta.get('layout'))}: allowed dense (strided)")
    sizes = _ints(meta.get("sizes"), what, "sizes")
    strides = _ints(meta.get("strides"), what, "strides")
    (offset,) = _ints([meta.get("storage_offset")], what, "storage_offset")
    if len(sizes) != len(strides):
        raise NotSupported(f"{what}: {len(sizes)} sizes and {len(strides)} strides")
    return dtype, sizes, strides, offset, meta.get("requires_grad") is True


def _ints(values, what, field) -> list[int]:
    """Static sizes ({"as_int": n}, n >= 0): a stored tensor's sizes are never symbolic."""
    ok = isinstance(values, list) and len(values) <= 16
    out = []
    for value in values if ok else ():
        number = value.get("as_int") if isinstance(value, dict) and len(value) == 1 else None
        if type(number) is not int or number < 0:
            ok = False
            break
        out.append(number)
    if not ok:
        raise NotSupported(f"{what}: {field} {shown(values)}: allowed up to 16 integers >= 0")
    return out
