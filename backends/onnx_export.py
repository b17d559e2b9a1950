"""Every export path to ONNX, each writing a checked model whose inputs and outputs are named
and described the same way (metadata "rnnbench.io"), so that one runner serves them all.

    direct       native RNN/LSTM/GRU nodes from the canonical weights (backends/onnx_direct.py)
    torchscript  torch.onnx.export(dynamo=False) of the PyTorch backend's module
    dynamo       torch.onnx.export(dynamo=True); unrolls nn.RNN into per-step nodes (static T)
    tf2onnx      tf2onnx.convert.from_keras of the Keras backend's functional model
    keras        Keras' own model.export(format="onnx"): tf2onnx.convert.from_function under
                 the TensorFlow backend, the same graph as tf2onnx; it names outputs by key

Outputs are renamed y, h_n, c_n, head after export. Inputs: x, then seq_lens (direct only: the
torch and Keras paths cannot export per-sample lengths), then the initial states, stacked
[L*D, B, H] as h0/c0 for direct and torch, one [B, H] input per layer and direction for Keras.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import time
import warnings
from pathlib import Path

from harness.model.spec import Cell, ModelSpec
from harness.model.weights import CanonicalWeights

IO_KEY = "rnnbench.io"
EXAMPLE_T, EXAMPLE_B = 5, 2  # deliberately unlike any case the model will run


class ExportError(RuntimeError):
    """An exporter wrote something other than the model asked for: a bug to see, not a skip."""


@dataclasses.dataclass
class Exported:
    exporter: str
    path: Path
    seconds: float
    io: dict  # x_layout, x, seq_lens, states (list of names), state_layout, outputs


def export(
    exporter: str, spec: ModelSpec, weights: CanonicalWeights, path, example_T: int = EXAMPLE_T
) -> Exported:
    if exporter not in _EXPORT:
        raise ValueError(f"unknown exporter {exporter!r}: allowed {', '.join(_EXPORT)}")
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, io_spec = _EXPORT[exporter](spec, weights, path, example_T)
    seconds = time.perf_counter() - start
    io_spec["outputs"] = sorted(o.name for o in model.graph.output)
    expected = sorted(output_roles(spec))
    if io_spec["outputs"] != expected:
        raise ExportError(f"{exporter} gave outputs {io_spec['outputs']}, expected {expected}")
    del model.metadata_props[:]
    onnx.helper.set_model_props(
        model,
        {
            IO_KEY: json.dumps(io_spec),
            "rnnbench.exporter": exporter,
            "rnnbench.spec": spec.to_json(),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)  # weights inline: one self-contained file
    Path(f"{path}.data").unlink(missing_ok=True)  # the dynamo exporter's external data
    return Exported(exporter, path, seconds, io_spec)


def _direct(spec, weights, path, example_T):
    from backends.onnx_direct import build_direct_model

    io_spec = {
        "x": "x",
        "x_layout": "batch_major" if spec.batch_first else "time_major",
        "seq_lens": "seq_lens",
        "state_layout": "stacked",
        "states": ["h0"] + (["c0"] if spec.cell is Cell.LSTM else []),
    }
    return build_direct_model(spec, weights, with_lens=True), io_spec


def _torch(dynamo: bool):
    def run(spec, weights, path, example_T):
        import onnx
        import torch

        from backends.torch_backend import PreparedTorch

        prepared = PreparedTorch(spec, weights, "cpu")
        states = ["h0"] + (["c0"] if spec.cell is Cell.LSTM else [])
        wrapper = _TorchExportWrapper(prepared.model)
        shape_x = (EXAMPLE_B, example_T) if spec.batch_first else (example_T, EXAMPLE_B)
        x = torch.zeros(*shape_x, spec.input_size, dtype=prepared.dtype)
        h = torch.zeros(
            spec.num_layers * spec.num_directions, EXAMPLE_B, spec.hidden_size, dtype=prepared.dtype
        )
        args = (x, h) + ((h.clone(),) if spec.cell is Cell.LSTM else ())
        t_axis, b_axis = (1, 0) if spec.batch_first else (0, 1)
        kwargs = {
            "input_names": ["x", *states],
            "output_names": output_roles(spec),
            "dynamo": dynamo,
        }
        if dynamo:
            T, B = torch.export.Dim("T"), torch.export.Dim("B")
            kwargs["dynamic_shapes"] = ({t_axis: T, b_axis: B},) + ({1: B},) * len(states)
        else:
            kwargs["dynamic_axes"] = {
                "x": {t_axis: "T", b_axis: "B"},
                **{s: {1: "B"} for s in states},
            }
            kwargs["opset_version"] = 17
        with quiet_export():
            # the stub types each keyword; these are built per exporter (dynamo or TorchScript)
            torch.onnx.export(wrapper, args, str(path), **kwargs)  # type: ignore[arg-type]
        io_spec = {
            "x": "x",
            "x_layout": "batch_major" if spec.batch_first else "time_major",
            "seq_lens": None,
            "state_layout": "stacked",
            "states": states,
        }
        return onnx.load(str(path)), io_spec

    return run


class _TorchExportWrapper:
    """Module wrapper whose forward takes (x, h0[, c0]) and returns the present outputs."""

    def __new__(cls, model):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, x, h0, c0=None):
                return tuple(t for t in self.model(x, None, h0, c0) if t is not None)

        return Wrapper()


@contextlib.contextmanager
def quiet_export():
    """The exporters (torch.onnx, onnxscript, tf2onnx) print progress and warn about
    torchvision and the like; keep the user's terminal clean."""
    names = ("torch.onnx", "torch.export", "onnxscript", "tf2onnx")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _tf2onnx(spec, weights, path, example_T):
    from backends import tf_backend
    from harness.quiet import native_stderr_captured

    with native_stderr_captured():
        import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    tf = tf_backend.tf
    model, io_spec = _keras_model(spec, weights)
    signature = [tf.TensorSpec(i.shape, i.dtype, name=i.name) for i in model.inputs]
    with quiet_export(), native_stderr_captured():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    # Keras flattens a dict of outputs in sorted key order: c_n, h_n, head, y.
    keys = sorted(model.output.keys()) if isinstance(model.output, dict) else None
    if keys is None or len(keys) != len(proto.graph.output):
        raise ExportError(f"tf2onnx gave {len(proto.graph.output)} outputs for {keys}")
    names = {key: out.name for key, out in zip(keys, proto.graph.output, strict=True)}
    for key, old in names.items():
        _rename_tensor(proto, old, key)
    return proto, io_spec


def _keras_own(spec, weights, path, example_T):
    import numpy as np
    import onnx

    from harness.quiet import native_stderr_captured

    model, io_spec = _keras_model(spec, weights)
    example = [np.zeros((EXAMPLE_B, example_T, spec.input_size), spec.dtype)] + [
        np.zeros((EXAMPLE_B, spec.hidden_size), spec.dtype) for _ in model.inputs[1:]
    ]
    model(example)  # Keras exports only a model that has been called
    with quiet_export(), native_stderr_captured():
        model.export(str(path), format="onnx", verbose=False)
    return onnx.load(str(path)), io_spec


def _keras_model(spec, weights):
    """The Keras backend's functional model with the canonical weights, and its I/O: batch-major
    x, one [B, H] state input per layer and direction."""
    from backends import tf_backend

    model, rnn_layers = tf_backend.build_keras_model(spec, with_mask=False, with_state=True)
    tf_backend.set_canonical_weights(model, rnn_layers, weights)
    io_spec = {
        "x": "x",
        "x_layout": "batch_major",
        "seq_lens": None,
        "state_layout": "split",
        "states": [i.name for i in model.inputs[1:]],
    }
    return model, io_spec


def _rename_tensor(model, old: str, new: str) -> None:
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in model.graph.output:
        if value.name == old:
            value.name = new


_EXPORT = {
    "direct": _direct,
    "torchscript": _torch(False),
    "dynamo": _torch(True),
    "tf2onnx": _tf2onnx,
    "keras": _keras_own,
}


def output_roles(spec: ModelSpec) -> list[str]:
    roles = ["y", "h_n"] + (["c_n"] if spec.cell is Cell.LSTM else [])
    return roles + (["head"] if spec.head is not None else [])
