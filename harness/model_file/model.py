"""`--model FILE`: the one door a user's model comes in by. Any accepted file becomes a spec and
canonical weights (from there it walks the same path as the built-in models), plus the file
itself as one more runtime where it can run (a state_dict cannot).

Accepted, told apart by content, not by name:
    ONNX        native RNN/LSTM/GRU nodes (harness/onnx/reader.py); --inputs gives the values
                of graph inputs, weights among them. A Loop/Scan export is accepted only as
                --against, checked against its source.
    Keras       .keras or .h5 (backends/keras_file.py)
    PyTorch     TorchScript, ExportedProgram (.pt2), or a state_dict with --spec
                (backends/torch_file.py)
    rnnbench    canonical weights (.npz written by rnnbench) with or without --spec
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

from harness.files import limits
from harness.files.limits import Refused
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights, WeightsError, load_weights
from harness.model_file.front import PLAIN, FrontEnd
from harness.model_file.keras_sizes import check_keras_file
from harness.model_file.readers import model_reader

ACCEPTED = (
    "ONNX with native RNN/LSTM/GRU nodes, Keras .keras or .h5, TorchScript, a torch "
    "ExportedProgram (.pt2), a torch state_dict with --spec, or rnnbench weights (.npz)"
)


@dataclasses.dataclass
class ModelFile:
    path: str
    kind: str  # onnx | keras | torchscript | exported-program | state-dict | rnnbench-weights
    spec: ModelSpec  # a reverse-only model's reads forward: see direction
    weights: CanonicalWeights
    direction: str = "forward"  # of every layer: forward, reverse or bidirectional
    # the file run as it is (harness/model_file/runtime.py): a runtime of its framework
    runtime: Any = None
    notes: tuple[str, ...] = ()
    imported: object | None = None  # ONNX: the reader's ImportedModel
    front: FrontEnd = PLAIN  # an embedding lookup or masking before the recurrence

    @property
    def name(self) -> str:
        return Path(self.path).name

    def describe(self) -> str:
        spec = self.spec
        shape = (
            f"{spec.cell.value.upper()} I={spec.input_size} H={spec.hidden_size} "
            f"L={spec.num_layers} {self.direction}"
        )
        extra = [spec.describe_variants()] if spec.variants else []
        if spec.head is not None:
            extra.append(f"head {spec.head.units} ({spec.head.activation})")
        if self.front is not PLAIN:
            extra.insert(0, self.front.describe())
        return f"{self.name} ({self.kind}): {shape}, {spec.dtype}" + "".join(
            f", {e}" for e in extra
        )


def kind_of(path) -> str:
    """onnx | keras | h5 | torch | npz, from the file's first bytes; NotSupported otherwise."""
    path = Path(path)
    if not path.is_file():
        raise NotSupported(f"{path}: no such file: allowed {ACCEPTED}")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\x89HDF"):
        return "h5"
    try:
        names = _zip_names(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise NotSupported(f"{path} is a damaged zip archive ({exc}): allowed {ACCEPTED}") from None
    if names is not None:
        if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
            return "keras"
        if any(n.endswith(".npy") for n in names) and not any("/" in n for n in names):
            return "npz"
        return "torch"
    problem = _onnx_problem(path)
    if problem is None:
        return "onnx"
    if head[:2] == b"\x80\x02" or path.suffix in (".pt", ".pth", ".pt2"):
        return "torch"  # a legacy pickle: torch.load refuses to unpickle code
    if path.suffix == ".onnx":
        raise NotSupported(f"{path} is not a readable ONNX model ({problem}): allowed {ACCEPTED}")
    raise NotSupported(f"{path}: not a model file rnnbench reads: allowed {ACCEPTED}")


def _zip_names(path: Path) -> list[str] | None:
    """The member names of a zip archive (zipfile reads its central directory only); None for
    a file that is not one."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _onnx_problem(path: Path) -> str | None:
    """None when the file is an ONNX model with a graph, else why not."""
    limits.require(path.stat().st_size, f"{path} (the file, read whole)")
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except ModuleNotFoundError:
        return "onnx is not installed (pip install 'rnnbench[onnx]')"
    except Exception as exc:
        return (str(exc).splitlines() or [type(exc).__name__])[0][:120]
    return None if model.graph.node else "it has no graph"


def open_model(path, spec: ModelSpec | None = None, given=None, batch_major=None) -> ModelFile:
    """The file as spec + canonical weights (+ its runtime). spec: for a state_dict (and
    rnnbench weights) only. given: values of an ONNX file's graph inputs (--inputs).
    batch_major: how x is laid out for an ONNX file without native nodes."""
    kind = kind_of(path)
    if spec is not None and kind not in ("torch", "npz"):
        raise NotSupported(
            f"--spec is for a torch state_dict or rnnbench weights; {path} is {kind}"
        )
    if given and kind != "onnx":
        raise NotSupported(
            f"--inputs gives the values of an ONNX file's graph inputs; {path} is {kind}"
        )
    if kind == "onnx":
        return _onnx(path, given, batch_major)
    if kind == "npz":
        try:
            weights = load_weights(path, spec)
        except WeightsError as exc:
            raise NotSupported(f"{exc}; allowed {ACCEPTED}") from None
        direction = "bidirectional" if weights.spec.bidirectional else "forward"
        return ModelFile(str(path), "rnnbench-weights", weights.spec, weights, direction)
    if kind in ("keras", "h5"):
        check_keras_file(path)  # before Keras reads a byte of it
    module = model_reader("keras" if kind in ("keras", "h5") else "torch")
    loaded = module.load(path) if kind in ("keras", "h5") else module.load(path, spec)
    found, spec, weights, runtime, notes = loaded[:5]
    front = loaded[5] if len(loaded) > 5 else PLAIN
    direction = "bidirectional" if spec.bidirectional else "forward"
    return ModelFile(str(path), found, spec, weights, direction, runtime, tuple(notes), None, front)


def _onnx(path, given, batch_major) -> ModelFile:
    from harness.model_file.runtime import OnnxRuntime
    from harness.onnx.reader import read_onnx

    imported = read_onnx(path, given)
    return ModelFile(
        str(path),
        "onnx",
        imported.spec,
        imported.weights,
        imported.direction,
        OnnxRuntime(path, imported),
        imported.notes,
        imported,
        imported.front,
    )


def open_export(path, source: ModelFile):
    """An export to check against `source`: native nodes are read (so that what its nodes
    receive is known); a Loop/Scan/unrolled export runs as a black box on x, laid out as the
    source's is."""
    from harness.model_file.runtime import OnnxRuntime
    from harness.onnx.reader import read_onnx

    if kind_of(path) != "onnx":
        raise NotSupported(f"--against {path}: not an ONNX file: allowed an ONNX export")
    try:
        imported = read_onnx(path)
    except Refused:
        raise
    except NotSupported as exc:
        if "--inputs" in str(exc):  # its weights are graph inputs: it cannot run on x alone
            raise
        # what the reader cannot map to weights (a Loop, ops before the recurrence, a head
        # it does not know) is still an export: its outputs are checked against the source's
        runtime = OnnxRuntime(
            path, None, batch_major=source.spec.batch_first, tokens=source.front.tokens
        )
        runtime.black_box_reason = str(exc).split(": allowed")[0]
        return runtime
    return OnnxRuntime(path, imported)


def open_source_runtime(path):
    """(the source file as it runs, what it is: cell, layers, directions, dtype, input_size,
    batch_first) for a Keras or TorchScript model the reference cannot compute; NotSupported
    for any other file."""
    kind = kind_of(path)
    if kind not in ("keras", "h5", "torch"):
        raise NotSupported(f"{path} ({kind}) cannot run as it is")
    if kind in ("keras", "h5"):
        check_keras_file(path)
    return model_reader("keras" if kind in ("keras", "h5") else "torch").load_runtime(path)
