"""ONNX Runtime: runs a model exported by one of the export paths, on one execution provider.

The provider actually used is checked, never assumed: a session whose first provider is not
the one asked for (ONNX Runtime falls back to CPU silently) is refused. Inference only.
The export happens at the first forward, once the case shows what it needs, and is kept in a
temporary folder for this prepared model's life.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any

import numpy as np

from harness.json_values import JsonObject
from harness.model.outputs import Outputs
from harness.model.protocol import BaseBackend, BasePrepared, NotSupported
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import CanonicalWeights
from harness.onnx.audit import audit
from harness.onnx.session import ORT_PROVIDERS, open_session, run_session

EXPORTER_NEEDS = {
    "direct": (),
    "torchscript": ("torch",),
    "dynamo": ("torch", "onnxscript"),
    "tf2onnx": ("tensorflow", "tf2onnx"),
    "keras": ("tensorflow", "tf2onnx"),
}


class OrtBackend(BaseBackend):
    def __init__(
        self,
        exporter: str = "direct",
        provider: str = "cpu",
        threads: int | None = None,
        optimization: str = "ORT_ENABLE_ALL",
    ):
        self.exporter, self.provider, self.threads = exporter, provider, threads
        self.optimization = optimization

    def unavailable_reason(self) -> str | None:
        import onnxruntime as ort

        for module in EXPORTER_NEEDS[self.exporter]:
            if importlib.util.find_spec(module) is None:
                return f"the {self.exporter} export path needs {module}, which is not installed"
        available = ort.get_available_providers()
        if ORT_PROVIDERS[self.provider] not in available:
            hint = (
                " (install onnxruntime-gpu instead of onnxruntime)"
                if self.provider != "cpu"
                else ""
            )
            return f"onnxruntime {ort.__version__} has no {ORT_PROVIDERS[self.provider]}{hint}"
        return None

    def set_threads(self, n: int) -> dict:
        """ORT's own pool is set per session (intra_op n, inter_op 1, sequential execution);
        an exporter that runs torch or TensorFlow in this process gets its pools fixed too."""
        self.threads = n
        pools = {"onnxruntime": {"intra_op": n, "inter_op": 1, "execution": "sequential"}}
        needs = EXPORTER_NEEDS[self.exporter]
        if "torch" in needs:
            from backends.torch_backend import TorchBackend

            pools.update(TorchBackend("cpu").set_threads(n))
        if "tensorflow" in needs:
            from backends.tf_backend import KerasBackend

            pools.update(KerasBackend("function").set_threads(n))
        return pools

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedOrt:
        return self.named(PreparedOrt(spec, weights, self))


class PreparedOrt(BasePrepared):
    def __init__(self, spec: ModelSpec, weights: CanonicalWeights, backend: OrtBackend):
        self.spec, self.weights, self.backend = spec, weights, backend
        self.session: Any = None  # an onnxruntime InferenceSession, once exported
        self.io: JsonObject = {}  # the export's input and output names (backends.onnx_export)
        self.audit: JsonObject | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._session_T: int | None = None  # the only T it accepts, if any

    def _ensure_session(self, T: int):
        """Export, audit and open a session. An export that baked in a static T other than
        this input's is recorded as such, then redone at this T so its numbers still count."""
        if self.session is not None and self._session_T in (None, T):
            return
        from backends.onnx_export import EXAMPLE_T, export

        b = self.backend
        self._folder = self._folder or tempfile.TemporaryDirectory(prefix="rnnbench-onnx-")
        path = os.path.join(self._folder.name, f"{b.exporter}_{self.spec.cell.value}.onnx")
        exported = export(b.exporter, self.spec, self.weights, path)
        self.io, self.audit = exported.io, audit(path, b.exporter, exported.seconds)
        self.audit["dynamic_shapes_checked"] = self.audit["static_T"] is None and T != EXAMPLE_T
        self._session_T = self.audit["static_T"]
        if self._session_T not in (None, T):
            export(b.exporter, self.spec, self.weights, path, example_T=T)
            self.audit["reexported_at_T"] = self._session_T = T
        session = open_session(
            path, b.provider, b.threads, b.optimization, what=f"the {b.exporter} export"
        )
        self.session = session
        self.audit.update(
            provider=session.get_providers()[0],
            intra_op_threads=session.get_session_options().intra_op_num_threads,
            optimization=b.optimization,
        )

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs:
        spec, exporter = self.spec, self.backend.exporter
        if seq_lens is not None and exporter != "direct":
            raise NotSupported(
                f"the {exporter} export has no sequence_lens input "
                "(only the direct builder writes one)"
            )
        x = np.asarray(x, dtype=spec.dtype)
        self._ensure_session(x.shape[1 if spec.batch_first else 0])
        return self._run(x, seq_lens, h0, c0)

    @property
    def impl_class(self) -> str:  # type: ignore[override]  # read from its audit, never set
        """The export's form as the audit found it ("native LSTM", "Loop", "unrolled")."""
        audit = self.audit or {}
        if audit.get("recurrent_ops"):
            return f"ONNX {'+'.join(audit['recurrent_ops'])} op (ORT kernel)"
        if audit.get("loop_ops"):
            return f"ONNX {'+'.join(audit['loop_ops'])}, a step a turn"
        return "ONNX graph unrolled over T"

    @property
    def notes(self) -> str:  # type: ignore[override]  # the export's node count, never set
        return f"{self.backend.exporter} export: {(self.audit or {}).get('node_count')} nodes"

    def forward_runner(self, x):
        """run() is session.run on a feed made once (its outputs are NumPy arrays already)."""
        self.forward(x)  # export, open and check the session
        feed, convert = self._feed(np.asarray(x, dtype=self.spec.dtype), None, None, None)
        what = f"the {self.backend.exporter} export"
        run = lambda: run_session(self.session, feed, what)  # noqa: E731
        return run, (lambda out: self._outputs(out, convert))

    def _run(self, x, seq_lens, h0, c0) -> Outputs:
        feed, convert = self._feed(x, seq_lens, h0, c0)
        what = f"the {self.backend.exporter} export"
        return self._outputs(run_session(self.session, feed, what), convert)

    def _outputs(self, arrays, convert: bool) -> Outputs:
        names = [o.name for o in self.session.get_outputs()]
        out = dict(zip(names, arrays, strict=True))
        if convert:
            out["y"] = out["y"].transpose(1, 0, 2)
        return Outputs(**out)

    def _feed(self, x, seq_lens, h0, c0) -> tuple[dict, bool]:
        spec, io = self.spec, self.io
        B = x.shape[0 if spec.batch_first else 1]
        convert = (io["x_layout"] == "batch_major") != spec.batch_first
        feed = {io["x"]: x.transpose(1, 0, 2) if convert else x}
        if io["seq_lens"]:
            lens = (
                np.full(B, x.shape[1 if spec.batch_first else 0]) if seq_lens is None else seq_lens
            )
            feed[io["seq_lens"]] = np.asarray(lens, dtype=np.int32)
        shape = (spec.num_layers * spec.num_directions, B, spec.hidden_size)
        states = [
            np.zeros(shape, spec.dtype) if s is None else np.asarray(s, spec.dtype)
            for s in ([h0, c0] if spec.cell is Cell.LSTM else [h0])
        ]
        if io["state_layout"] == "stacked":
            feed.update(zip(io["states"], states, strict=True))
        else:  # one [B, H] input per layer and direction, h before c
            split = [s[row] for row in range(shape[0]) for s in states]
            feed.update(zip(io["states"], split, strict=True))
        return feed, convert

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        raise NotSupported("ONNX Runtime runs inference only: no gradients")

    def step_runner(self):
        from backends.streaming.ort_step import ort_step_runner

        return ort_step_runner(self)
