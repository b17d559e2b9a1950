"""A user's Keras model file (.keras, or legacy .h5) read into a spec and canonical weights,
plus the file itself as a runtime. Accepted: a Sequential or functional model that is a chain
of SimpleRNN/LSTM/GRU layers (optionally each Bidirectional with merge_mode="concat"), stacked
with return_sequences=True between them, and optionally a Dense head (linear or softmax, or an
Activation("softmax") after it) on the last layer's final state. Dropout layers, identities at
inference, are passed over. Anything else is refused naming the layer and what is allowed.
The file's sizes are held to the memory budget before this module is imported
(harness/model_file/keras_sizes.py, called by harness/model_file/model.py).
"""

from __future__ import annotations

import dataclasses
import ntpath
from typing import Any

import numpy as np

from backends.tf_model import LAYERS, canonical_from_keras_arrays, keras, tf
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model_file.front import PLAIN, FrontEnd

PASSIVE = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout")


def load(path):
    """(kind, spec, canonical weights, runtime, notes, front end) of a .keras or .h5 file."""
    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise NotSupported(
            f"{path} is not a Keras model file Keras can load ({message}): allowed Keras .keras "
            "or .h5, ONNX, TorchScript, a torch ExportedProgram (.pt2), a torch state_dict with "
            "--spec, or rnnbench weights (.npz)"
        ) from None
    spec, weights, notes, front = read_model(model, path)
    return "keras", spec, weights, KerasRuntime(str(path), model, spec), notes, front


def load_runtime(path):
    """The file as it runs, and what it is (cell, layers, directions, dtype, input size), for a
    model the reference does not compute (its export is then checked against it as it runs)."""
    model = keras.models.load_model(str(path), compile=False)
    recurrent = [
        layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        for layer in model.layers
        if isinstance(layer, (keras.layers.Bidirectional, *LAYERS.values()))
    ]
    if len(model.inputs) != 1 or not recurrent:
        raise NotSupported(f"{path}: not one sequence input into recurrent layers")
    runtime = KerasRuntime(str(path), model, None)
    front = PLAIN
    for layer in model.layers[:3]:  # an Embedding or Masking before the first recurrent layer
        kind = type(layer).__name__
        if kind in ("Masking", "Embedding"):
            front = _front(layer, kind, front, path)
    about = {
        "cell": {v: k for k, v in LAYERS.items()}[type(recurrent[0])].value,
        "layers": len(recurrent),
        "directions": 2 if isinstance(model.layers[0], keras.layers.Bidirectional) else 1,
        "dtype": runtime.dtype,
        "input_size": (
            int(front.table.shape[1]) if front.table is not None else int(model.inputs[0].shape[-1])
        ),
        "batch_first": True,
        "front": front,
    }
    return runtime, about


def read_model(model, path="the model"):
    """(spec, canonical weights, notes, front end) of a loaded Keras model."""
    if len(model.inputs) != 1:
        raise NotSupported(f"{path} has {len(model.inputs)} inputs: allowed one, the sequence")
    rnns, head, activation, passed, front = _chain(model, path)
    first = rnns[0]
    cell = {v: k for k, v in LAYERS.items()}[type(first["layer"])]
    units = [r["layer"].units for r in rnns]
    if len(set(units)) > 1:
        raise NotSupported(
            f"{path} stacks layers of {units} units: allowed one size (an export of it is "
            "checked against it as it runs: --against EXPORT)"
        )
    kernel = first["layer"].cell.kernel
    spec = ModelSpec(
        cell,
        int(kernel.shape[0]),
        first["layer"].units,
        num_layers=len(rnns),
        bidirectional=first["bidirectional"],
        batch_first=True,
        dtype=str(kernel.dtype),
        head=None if head is None else Head(head.units, activation),
        linear_before_reset=cell is not Cell.GRU or bool(first["layer"].cell.reset_after),
    )
    per_direction = []
    for r in rnns:
        directions = (
            [r["wrapper"].forward_layer, r["wrapper"].backward_layer]
            if r["bidirectional"]
            else [r["layer"]]
        )
        per_direction += [_arrays(d) for d in directions]
    head_arrays = None if head is None else _dense_arrays(head)
    weights = canonical_from_keras_arrays(spec, per_direction, head_arrays)
    notes = [f"read from Keras layers {', '.join(r['name'] for r in rnns)}"]
    if passed:
        notes.append(f"passed over at inference: {', '.join(passed)}")
    if front.layers:
        notes.append(f"before the recurrence: {', '.join(front.layers)}")
    zero = bool(getattr(rnns[-1]["layer"], "zero_output_for_mask", False))
    return spec, weights, notes, dataclasses.replace(front, zero_output_for_mask=zero)


def _chain(model, path):
    """The recurrent layers in order, the Dense head (or None), its activation, the layers
    passed over, and the front end (an Embedding, a Masking) before the first recurrent layer;
    refusals name the layer."""
    rnns: list[Any] = []
    head, activation, passed, front = None, "none", [], PLAIN
    for layer in model.layers:
        kind = type(layer).__name__
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        if kind in ("Masking", "Embedding") and not rnns:
            front = _front(layer, kind, front, path)
        elif isinstance(inner, tuple(LAYERS.values())):
            if head is not None:
                raise NotSupported(f"{path}: recurrent layer {layer.name} comes after the Dense")
            if inner is not layer and layer.merge_mode != "concat":
                raise NotSupported(
                    f"{path}: {layer.name} merges directions by {layer.merge_mode!r}: "
                    "allowed 'concat'"
                )
            _check_recurrent(layer, inner, path)
            rnns.append(
                {
                    "name": layer.name,
                    "layer": inner,
                    "wrapper": layer,
                    "bidirectional": inner is not layer,
                }
            )
        elif isinstance(layer, keras.layers.Dense):
            if head is not None or not rnns:
                raise NotSupported(f"{path}: Dense {layer.name}: allowed one Dense, after the RNN")
            if rnns[-1]["layer"].return_sequences:
                raise NotSupported(
                    f"{path}: Dense {layer.name} reads every step (the last recurrent layer has "
                    "return_sequences=True): allowed a Dense on the final state"
                )
            head, activation = layer, _head_activation(layer.activation, layer.name, path)
        elif kind == "Activation" and head is not None and activation == "none":
            activation = _head_activation(layer.activation, layer.name, path)
        elif kind in PASSIVE:
            if kind != "InputLayer":
                passed.append(layer.name)
        else:
            raise NotSupported(
                f"{path}: layer {layer.name} is a {kind}: allowed an Embedding or Masking first, "
                "SimpleRNN, LSTM, GRU, Bidirectional, Dense, Dropout"
            )
    if not rnns:
        raise NotSupported(f"{path} has no SimpleRNN, LSTM or GRU layer")
    for r in rnns[:-1]:
        if not r["layer"].return_sequences:
            raise NotSupported(
                f"{path}: {r['name']} feeds another recurrent layer without return_sequences"
            )
    if len({(type(r["layer"]), r["bidirectional"]) for r in rnns}) > 1:
        raise NotSupported(f"{path} mixes kinds or directions of layers: allowed one kind stacked")
    return rnns, head, activation, passed, front


def _front(layer, kind: str, front: FrontEnd, path) -> FrontEnd:
    """An Embedding (integer tokens in, optionally token 0 masked) or a Masking layer, first
    in the model: one of each at most, the Embedding before the Masking."""
    names = (*front.layers, layer.name)
    if kind == "Embedding":
        if front.layers:
            raise NotSupported(f"{path}: Embedding {layer.name} comes after {front.layers[0]}")
        table = np.asarray(layer.embeddings)
        return FrontEnd(table, None, bool(layer.mask_zero), layers=names)
    if front.masks:
        raise NotSupported(f"{path}: Masking {layer.name} after another mask: allowed one")
    if front.tokens:
        raise NotSupported(f"{path}: Masking {layer.name} after an Embedding: allowed before it")
    return FrontEnd(None, float(layer.mask_value), layers=names)


def _check_recurrent(layer, inner, path) -> None:
    where = f"{path}: {layer.name}"
    for flag in ("go_backwards", "stateful"):
        if getattr(inner, flag, False):
            raise NotSupported(f"{where} sets {flag}=True: allowed False")
    cell = inner.cell
    wanted = {"activation": "tanh"}
    if not isinstance(inner, keras.layers.SimpleRNN):
        wanted["recurrent_activation"] = "sigmoid"
    for name, expected in wanted.items():
        got = getattr(getattr(cell, name), "__name__", str(getattr(cell, name)))
        if got != expected:
            raise NotSupported(f"{where} uses {name}={got!r}: allowed {expected!r}")


def _head_activation(fn, name, path) -> str:
    got = getattr(fn, "__name__", str(fn))
    allowed = {"linear": "none", "softmax": "softmax"}
    if got not in allowed:
        raise NotSupported(f"{path}: {name} has activation {got!r}: allowed linear, softmax")
    return allowed[got]


def _arrays(layer) -> list[np.ndarray]:
    """[kernel, recurrent_kernel, bias] of one recurrent layer (zero bias when use_bias=False)."""
    cell = layer.cell
    kernel, recurrent = np.asarray(cell.kernel), np.asarray(cell.recurrent_kernel)
    if cell.use_bias:
        return [kernel, recurrent, np.asarray(cell.bias)]
    width = kernel.shape[1]
    two = isinstance(layer, keras.layers.GRU) and cell.reset_after
    return [kernel, recurrent, np.zeros((2, width) if two else width, kernel.dtype)]


def _dense_arrays(dense) -> list[np.ndarray]:
    kernel = np.asarray(dense.kernel)
    bias = np.asarray(dense.bias) if dense.use_bias else np.zeros(kernel.shape[1], kernel.dtype)
    return [kernel, bias]


class KerasRuntime:
    """The loaded Keras model run on batch-major x (compiled by tf.function for timing); its
    outputs by the model's output names."""

    kind = "keras"
    nodes = ()
    output_T = None
    T = B = None
    batch_major = True  # a Keras model takes [B, T, ...]

    def __init__(self, path: str, model, spec: ModelSpec | None):
        self.path, self.model, self.spec = path, model, spec
        self.dtype = spec.dtype if spec is not None else _float_dtype(model)
        self.label = ntpath.basename(path)  # either separator
        shape = model.inputs[0].shape  # [B, T, I], or [B, T] of tokens
        self.T = shape[1] if len(shape) in (2, 3) and shape[1] is not None else None
        self.B = shape[0] if len(shape) in (2, 3) and shape[0] is not None else None
        self.names = list(getattr(model, "output_names", None) or [])
        self.input_names = [getattr(model.inputs[0], "name", "x") or "x"]

    def _outputs(self, out) -> dict[str, np.ndarray]:
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        values = list(out) if isinstance(out, list | tuple) else [out]
        names = self.names if len(self.names) == len(values) else []
        return {names[k] if names else f"output_{k}": np.asarray(v) for k, v in enumerate(values)}

    def _batch_major(self, x):
        """x [T, B, I] (or tokens [T, B]) as the model takes it: batch-major, in its dtype."""
        x = np.swapaxes(np.asarray(x), 0, 1)
        dtype = np.int64 if x.dtype.kind in "iu" else self.dtype
        return np.ascontiguousarray(x, dtype=dtype)

    def run(self, x, rng=None):
        from harness.model_file.runtime import RunResult

        xb = self._batch_major(x)
        try:
            return RunResult(self._outputs(self.model(xb, training=False)))
        except Exception as exc:
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RuntimeError(f"{self.label} fails on x {list(xb.shape)}: {message}") from None

    def runner(self, x):
        xb = tf.constant(self._batch_major(x))
        call = tf.function(lambda t: self.model(t, training=False))
        return (lambda: call(xb)), self._outputs

    def set_threads(self, n: int) -> None:
        from backends.tf_backend import KerasBackend

        KerasBackend("function").set_threads(n)


def _float_dtype(model) -> str:
    """The model's floating dtype: its input's, or for integer tokens its first weight's."""
    given = str(model.inputs[0].dtype)
    if given.startswith("float"):
        return given
    return next(
        (str(w.dtype) for w in model.weights if str(w.dtype).startswith("float")), "float32"
    )
