"""Keras 3's form of the canonical model: SimpleRNN / LSTM / GRU(reset_after=True),
Bidirectional(concat) and a Dense head as a functional keras.Model, and the weight mapping.

Keras LSTM and SimpleRNN hold one bias, b = Wb + Rb: canonical -> Keras adds them, and the
gradient of b is the gradient of both Wb and Rb (each enters the pre-activation only through the
sum). Keras -> canonical puts b in Wb and zeros in Rb: the same model, other parameters.
Keras GRU(reset_after=True) keeps both biases ([2, 3H]) and is the linear_before_reset=1 form;
GRU(reset_after=False) is ONNX's linear_before_reset=0 form with one bias, mapped like the LSTM's.
Keras has no peepholes, input_forget or clip. `sequence_lens` go through a boolean mask, which
carries each sample's state over padded steps.
"""

from __future__ import annotations

import os

from harness.quiet import native_stderr_captured

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
with native_stderr_captured():  # absl prints before it reads TF_CPP_MIN_LOG_LEVEL
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")

import numpy as np  # noqa: E402

from harness.model.layouts import reorder_gates  # noqa: E402
from harness.model.protocol import NotSupported  # noqa: E402
from harness.model.spec import Cell, Head, ModelSpec  # noqa: E402
from harness.model.weights import CanonicalWeights  # noqa: E402

LAYERS = {
    Cell.RNN: keras.layers.SimpleRNN,
    Cell.LSTM: keras.layers.LSTM,
    Cell.GRU: keras.layers.GRU,
}


def one_bias(spec: ModelSpec) -> bool:
    """Keras keeps one bias b = Wb + Rb for this cell (all but the reset_after=True GRU)."""
    return spec.cell is not Cell.GRU or not spec.linear_before_reset


def check_supported(spec: ModelSpec) -> None:
    """NotSupported naming what Keras' layers cannot compute (peepholes, input_forget, clip)."""
    if [v for v in spec.variants if v != "linear_before_reset"]:
        what = spec.replace(linear_before_reset=True).describe_variants()
        raise NotSupported(f"Keras' {LAYERS[spec.cell].__name__} has no {what}")


def _rnn_layer(spec: ModelSpec, name: str):
    check_supported(spec)
    extra = {"reset_after": spec.linear_before_reset} if spec.cell is Cell.GRU else {}
    return LAYERS[spec.cell](
        spec.hidden_size,
        return_sequences=True,
        return_state=True,
        zero_output_for_mask=True,
        dtype=spec.dtype,
        name=name,
        **extra,
    )


def build_keras_model(spec: ModelSpec, with_mask: bool = False, with_state: bool = False):
    """The canonical model as a functional keras.Model (tf2onnx needs a functional model).
    Inputs: x [B, T, I], then mask [B, T] if with_mask, then h0 (and c0) per layer and
    direction if with_state. Outputs: y [B, T, D*H], h_n and c_n as [L*D, B, H], head."""
    n_states = 2 if spec.cell is Cell.LSTM else 1
    x = keras.Input((None, spec.input_size), dtype=spec.dtype, name="x")
    inputs, mask = [x], None
    if with_mask:
        mask = keras.Input((None,), dtype="bool", name="mask")
        inputs.append(mask)
    seq, h_n, c_n, rnn_layers = x, [], [], []
    for layer in range(spec.num_layers):
        states = []
        if with_state:
            states = [
                keras.Input((spec.hidden_size,), dtype=spec.dtype, name=f"{k}0_l{layer}_d{d}")
                for d in range(spec.num_directions)
                for k in "hc"[:n_states]
            ]
            inputs += states
        rnn = _rnn_layer(spec, f"rnn_l{layer}")
        if spec.bidirectional:
            rnn = keras.layers.Bidirectional(
                rnn, merge_mode="concat", name=f"bi_l{layer}", dtype=spec.dtype
            )
        result = rnn(seq, mask=mask, initial_state=states or None)
        seq, finals = result[0], result[1:]
        h_n += finals[::n_states]
        if n_states == 2:
            c_n += finals[1::2]
        rnn_layers += [rnn.forward_layer, rnn.backward_layer] if spec.bidirectional else [rnn]
    outputs = {"y": seq, "h_n": keras.ops.stack(h_n)}
    if c_n:
        outputs["c_n"] = keras.ops.stack(c_n)
    if spec.head is not None:
        D = spec.num_directions
        last = h_n[-D:]
        head_in = (
            keras.layers.Concatenate(name="head_in", dtype=spec.dtype)(last) if D == 2 else last[0]
        )
        activation = None if spec.head.activation == "none" else spec.head.activation
        outputs["head"] = keras.layers.Dense(
            spec.head.units, activation=activation, dtype=spec.dtype, name="head"
        )(head_in)
    model = keras.Model(inputs, outputs, name=f"rnnbench_{spec.cell.value}")
    return model, rnn_layers


def _keras_arrays(spec: ModelSpec, weights: CanonicalWeights, layer: int, d: int):
    W, R, Wb, Rb = (a[d] for a in weights.layer(layer))
    kernel = reorder_gates(W, spec.cell, "onnx", "keras").T
    recurrent = reorder_gates(R, spec.cell, "onnx", "keras").T
    if one_bias(spec):
        bias = reorder_gates(Wb + Rb, spec.cell, "onnx", "keras")
    else:
        bias = np.stack([reorder_gates(b, spec.cell, "onnx", "keras") for b in (Wb, Rb)])
    return [kernel, recurrent, bias]


def set_canonical_weights(model, rnn_layers, weights: CanonicalWeights) -> None:
    spec = weights.spec
    D = spec.num_directions
    for index, rnn in enumerate(rnn_layers):
        rnn.set_weights(_keras_arrays(spec, weights, index // D, index % D))
    if spec.head is not None:
        model.get_layer("head").set_weights([weights["head.W"].T, weights["head.b"]])


def canonical_from_keras_arrays(spec: ModelSpec, per_rnn_layer, head=None) -> CanonicalWeights:
    """Canonical weights from [kernel, recurrent_kernel, bias] per Keras RNN layer, in
    (layer, direction) order, and optionally [kernel, bias] of the Dense head."""
    D, arrays = spec.num_directions, dict[str, list[np.ndarray]]()
    for index, (kernel, recurrent, bias) in enumerate(per_rnn_layer):
        layer = index // D
        to_onnx = lambda a: reorder_gates(np.asarray(a), spec.cell, "keras", "onnx")  # noqa: E731
        if np.ndim(bias) == 2:  # GRU(reset_after=True): [input bias; recurrent bias]
            wb, rb = to_onnx(bias[0]), to_onnx(bias[1])
        else:
            wb, rb = to_onnx(bias), np.zeros_like(to_onnx(bias))
        parts = {"W": to_onnx(kernel.T), "R": to_onnx(recurrent.T), "Wb": wb, "Rb": rb}
        for key, value in parts.items():
            arrays.setdefault(f"l{layer}.{key}", []).append(value.astype(spec.dtype))
    out = {name: np.stack(blocks) for name, blocks in arrays.items()}
    if spec.head is not None:
        out["head.W"], out["head.b"] = np.asarray(head[0]).T, np.asarray(head[1])
    return CanonicalWeights(spec, out)


def import_keras_model(model: keras.Model) -> tuple[ModelSpec, CanonicalWeights]:
    """A user's Keras model made of SimpleRNN/LSTM/GRU layers (optionally Bidirectional, all
    alike) and an optional final Dense: its spec and canonical weights."""
    rnns, head, bidirectional = [], None, False
    for layer in model.layers:
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        if isinstance(inner, tuple(LAYERS.values())):
            bidirectional = inner is not layer
            rnns += [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
        elif isinstance(layer, keras.layers.Dense):
            head = layer
        elif not isinstance(layer, keras.layers.InputLayer):
            raise NotSupported(
                f"Keras layer {layer.name} ({type(layer).__name__}) is not "
                "supported: allowed SimpleRNN, LSTM, GRU, Bidirectional, Dense"
            )
    if not rnns:
        raise NotSupported("the Keras model has no SimpleRNN, LSTM or GRU layer")
    first = rnns[0]
    cell = {v: k for k, v in LAYERS.items()}[type(first)]
    reset_after = bool(getattr(first.cell, "reset_after", True))
    activation = "none"
    if head is not None:
        known = {"linear": "none", "softmax": "softmax"}.get(head.activation.__name__)
        if known is None:
            raise NotSupported(
                f"Dense activation {head.activation.__name__}: allowed none, softmax"
            )
        activation = known
    spec = ModelSpec(
        cell,
        int(first.cell.kernel.shape[0]),
        first.cell.units,
        num_layers=len(rnns) // (2 if bidirectional else 1),
        bidirectional=bidirectional,
        batch_first=True,
        dtype=str(first.cell.kernel.dtype),
        head=None if head is None else Head(head.units, activation),
        linear_before_reset=reset_after or cell is not Cell.GRU,
    )
    return spec, canonical_from_keras_arrays(
        spec, [r.get_weights() for r in rnns], None if head is None else head.get_weights()
    )


def trainable_variables(model, rnn_layers) -> tuple[list, list]:
    """The RNN cells' [kernel, recurrent_kernel, bias] in (layer, direction) order, and the
    head's [kernel, bias] (empty without a head)."""
    rnn = [v for layer in rnn_layers for v in layer.cell.trainable_variables]
    names = {layer.name for layer in model.layers}
    head = [model.get_layer("head").kernel, model.get_layer("head").bias] if "head" in names else []
    return rnn, head
