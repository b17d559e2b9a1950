"""A model file as its own runtime runs it: what `rnnbench parity --model` compares with the
reference, and `bench --model` times. Each runtime takes the same time-major x and returns its
outputs by name, plus, for an ONNX file with native recurrent nodes, every value those nodes
received (sequence_lens, initial states), so that the reference can start where they did.

OnnxRuntime is defined here; the Keras and torch runtimes live beside their backends
(backends/keras_file.py, backends/torch_file.py) and follow the same shape."""

from __future__ import annotations

import dataclasses
import ntpath
from typing import Any, Protocol

import numpy as np

from harness.model.protocol import NotSupported
from harness.onnx.graph import declared_dims
from harness.onnx.reader import ImportedModel, load_model
from harness.onnx.session import open_session, run_session
from harness.onnx.values import constant_values

ONNX_ELEM = {1: np.float32, 11: np.float64, 6: np.int32, 7: np.int64}


@dataclasses.dataclass
class RunResult:
    outputs: dict[str, np.ndarray]
    received: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class Runtime(Protocol):
    label: str  # the file's name, as rows and messages show it
    kind: str  # onnx | keras | torchscript | exported-program | torch-module
    T: int | None  # the sequence length it declares, None when dynamic
    B: int | None
    output_T: int | None  # a T an output fixes while x leaves it dynamic (a baked length?)
    nodes: tuple  # native recurrent nodes (ONNX), () otherwise

    def run(self, x: np.ndarray, rng) -> RunResult:
        """Run on time-major float64 x [T, B, I] (cast and laid out as the file wants); other
        inputs the file declares get values drawn from rng."""

    def runner(self, x: np.ndarray) -> tuple[Any, Any]:
        """(run, fetch) for timing: run() is one call on inputs made once; fetch(result) gives
        the outputs by name."""

    def set_threads(self, n: int) -> None:
        """Fix the runtime's library pools at n before anything runs."""


class OnnxRuntime:
    """An ONNX file in ONNX Runtime (CPU). `imported` is its reading (None for a file without
    native recurrent nodes: a Loop/Scan export, run as a black box on x alone, its other
    inputs zero or full-length); `batch_major` says how x is laid out for such a file."""

    kind = "onnx"
    black_box_reason = ""  # why an export is run as a black box (model.open_export)

    def __init__(
        self, path, imported: ImportedModel | None, batch_major: bool = False, tokens=False
    ):
        self.path, self.imported = str(path), imported
        self.label = ntpath.basename(str(path))  # either separator
        self.model = load_model(path)
        self.constants = constant_values(self.model)
        stored = set(self.constants)
        self.graph_inputs = [i for i in self.model.graph.input if i.name not in stored]
        self.output_names = [o.name for o in self.model.graph.output]
        self.nodes = imported.nodes if imported is not None else ()
        if imported is not None:
            self.x_input, self.batch_major = imported.x_input, imported.batch_major
            self.T, self.B, self.output_T = imported.T, imported.B, imported.output_T
        else:
            self.x_input = _sequence_input(self.graph_inputs, path, tokens)
            self.batch_major = batch_major
            dims = declared_dims(next(i for i in self.graph_inputs if i.name == self.x_input))
            t_axis = 1 if batch_major else 0
            self.T, self.B, self.output_T = dims[t_axis], dims[1 - t_axis], None
        self._session, self._probe = None, None
        self.threads: int | None = None  # ONNX Runtime's intra-op threads (None: its default)

    def set_threads(self, n: int) -> None:
        """ONNX Runtime's pool is set per session: the session opened from now on."""
        self.threads, self._session = n, None

    @property
    def session(self):
        if self._session is None:
            self._session = open_session(self.model, threads=self.threads, what=self.path)
        return self._session

    def feed(self, x: np.ndarray, rng=None) -> dict[str, np.ndarray]:
        """x in the file's layout and dtype; sequence_lens with one full-length sample and the
        others drawn in [1, T]; initial states ~ N(0, 0.25); weights given as graph inputs,
        their values. A file without native nodes, or no rng, gets zeros and full lengths for
        the rest."""
        T, B = int(x.shape[0]), int(x.shape[1])
        named = self._named_dims(T, B)
        weights = self.imported.weight_inputs if self.imported is not None else {}
        slots = {n: s for node in self.nodes for s, n in node.inputs.items()}
        feed = {}
        for value in self.graph_inputs:
            dtype = ONNX_ELEM.get(value.type.tensor_type.elem_type)
            if dtype is None:
                raise NotSupported(
                    f"{self.label}: input {value.name!r} has element type "
                    f"{value.type.tensor_type.elem_type}: allowed float, double, int32, int64"
                )
            if value.name == self.x_input:
                array = np.swapaxes(x, 0, 1) if self.batch_major else x
            elif value.name in weights:
                array = weights[value.name]
            elif np.issubdtype(dtype, np.integer):
                array = np.full(B, T)
                if slots.get(value.name) == "sequence_lens" and rng is not None:
                    array = rng.integers(1, T + 1, size=B)
                    array[0] = T
            else:
                sizes = [named.get(n, B) if d is None else d for d, n in _dim_pairs(value)]
                # what native nodes receive is probed for the reference; a black box's is not
                traced = self.imported is not None and rng is not None
                array = 0.5 * rng.standard_normal(sizes) if traced else np.zeros(sizes)
            feed[value.name] = np.asarray(array).astype(dtype)
        return feed

    def _named_dims(self, T: int, B: int) -> dict[str, int]:
        x = next(v for v in self.graph_inputs if v.name == self.x_input)
        names = [n for _, n in _dim_pairs(x)]
        t_axis = 1 if self.batch_major else 0
        return {k: v for k, v in ((names[t_axis], T), (names[1 - t_axis], B)) if k}

    def run(self, x, rng) -> RunResult:
        return self.run_feed(self.feed(x, rng))

    def run_feed(self, feed: dict[str, np.ndarray]) -> RunResult:
        """The file's outputs by name, and every value its recurrent nodes received: constants,
        the feed, its outputs and, probed, the intermediate values their sequence_lens and
        initial states name."""
        outputs = dict(
            zip(self.output_names, run_session(self.session, feed, self.path), strict=True)
        )
        wanted = {n for node in self.nodes for s, n in node.inputs.items() if s != "X"}
        missing = sorted(wanted - set(feed) - set(self.constants) - set(outputs))
        received = {**self.constants, **feed, **outputs}
        if missing:
            if self._probe is None:
                self._probe = open_session(self.model, extra_outputs=missing, what=self.path)
            probed = run_session(self._probe, feed, self.path)[-len(missing) :]
            received.update(zip(missing, probed, strict=True))
        return RunResult(outputs, received)

    def runner(self, x):
        """Timing: x, full lengths and zero states, made once."""
        feed = self.feed(x)
        session = self.session
        return (lambda: session.run(None, feed)), (
            lambda out: dict(zip(self.output_names, out, strict=True))
        )


def _dim_pairs(value) -> list[tuple[int | None, str]]:
    """(static size or None, symbolic name or "") per axis."""
    return [
        (d.dim_value if d.HasField("dim_value") else None, d.dim_param)
        for d in value.type.tensor_type.shape.dim
    ]


def _sequence_input(graph_inputs, path, tokens: bool = False) -> str:
    """A file without native nodes: its one rank-3 floating-point input is the sequence (its
    one rank-2 integer input, for a source that takes tokens)."""
    rank, kinds, what = (2, (6, 7), "integer") if tokens else (3, (1, 11), "floating-point")
    candidates = [
        v.name
        for v in graph_inputs
        if len(v.type.tensor_type.shape.dim) == rank and v.type.tensor_type.elem_type in kinds
    ]
    if len(candidates) != 1:
        raise NotSupported(
            f"{path}: cannot tell which input is the sequence: {len(candidates)} {what} inputs "
            f"of rank {rank} (allowed exactly one)"
        )
    return candidates[0]
