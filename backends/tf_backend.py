"""TensorFlow / Keras 3: SimpleRNN / LSTM / GRU(reset_after=True), Bidirectional(concat) and a
Dense head, as a functional keras.Model built from the canonical weights.

Keras LSTM and SimpleRNN hold one bias, b = Wb + Rb: canonical -> Keras adds them, and the
gradient of b is the gradient of both Wb and Rb (each enters the pre-activation only through the
sum). Keras -> canonical puts b in Wb and zeros in Rb: the same model, other parameters.
Keras GRU(reset_after=True) keeps both biases ([2, 3H]) and is the linear_before_reset=1 form.
`sequence_lens` go through a boolean mask, which carries each sample's state over padded steps.
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
from harness.model.outputs import Outputs  # noqa: E402
from harness.model.protocol import NotSupported  # noqa: E402
from harness.model.spec import Cell, Head, ModelSpec  # noqa: E402
from harness.model.weights import CanonicalWeights  # noqa: E402

LAYERS = {
    Cell.RNN: keras.layers.SimpleRNN,
    Cell.LSTM: keras.layers.LSTM,
    Cell.GRU: keras.layers.GRU,
}
MODES = ("eager", "function", "xla")


def _rnn_layer(spec: ModelSpec, name: str):
    extra = {"reset_after": True} if spec.cell is Cell.GRU else {}
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
    if spec.cell is Cell.GRU:
        bias = np.stack([reorder_gates(b, spec.cell, "onnx", "keras") for b in (Wb, Rb)])
    else:
        bias = reorder_gates(Wb + Rb, spec.cell, "onnx", "keras")
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
    D, arrays = spec.num_directions, {}
    for index, (kernel, recurrent, bias) in enumerate(per_rnn_layer):
        layer = index // D
        to_onnx = lambda a: reorder_gates(np.asarray(a), spec.cell, "keras", "onnx")  # noqa: E731
        if spec.cell is Cell.GRU:
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
    if cell is Cell.GRU and not first.cell.reset_after:
        raise NotSupported(
            "GRU(reset_after=False) is not the canonical (linear_before_reset=1) GRU"
        )
    activation = "none"
    if head is not None:
        activation = {"linear": "none", "softmax": "softmax"}.get(head.activation.__name__)
        if activation is None:
            raise NotSupported(
                f"Dense activation {head.activation.__name__}: allowed none, softmax"
            )
    spec = ModelSpec(
        cell,
        int(first.cell.kernel.shape[0]),
        first.cell.units,
        num_layers=len(rnns) // (2 if bidirectional else 1),
        bidirectional=bidirectional,
        batch_first=True,
        dtype=str(first.cell.kernel.dtype),
        head=None if head is None else Head(head.units, activation),
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


class KerasBackend:
    def __init__(self, mode: str = "eager"):
        if mode not in MODES:
            raise ValueError(f"tf mode {mode!r}: allowed {', '.join(MODES)}")
        self.mode, self.name = mode, f"tf-{mode}"

    def unavailable_reason(self) -> str | None:
        return None

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedKeras:
        return PreparedKeras(spec, weights, self.mode)


class PreparedKeras:
    def __init__(self, spec: ModelSpec, weights: CanonicalWeights, mode: str):
        self.spec, self.weights, self.mode = spec, weights, mode
        self._variants: dict[bool, tuple] = {}

    def _variant(self, with_mask: bool):
        """(model, rnn layers, compiled forward, compiled grad), built once per mask use."""
        if with_mask not in self._variants:
            model, rnn_layers = build_keras_model(self.spec, with_mask, with_state=True)
            set_canonical_weights(model, rnn_layers, self.weights)
            self._variants[with_mask] = (model, rnn_layers, *self._compile(model, rnn_layers))
        return self._variants[with_mask]

    def _compile(self, model, rnn_layers):
        variables, head = trainable_variables(model, rnn_layers)

        def forward(inputs):
            return model(inputs, training=False)

        def grad(inputs, cotangents):
            with tf.GradientTape() as tape:
                tape.watch([t for t in inputs if t.dtype.is_floating])
                out = model(inputs, training=False)
                loss = tf.add_n([tf.reduce_sum(out[k] * c) for k, c in cotangents.items()])
            return tape.gradient(loss, [variables, head, inputs])

        if self.mode == "eager":
            return forward, grad
        jit = self.mode == "xla"
        return tf.function(forward, jit_compile=jit), tf.function(grad, jit_compile=jit)

    def _inputs(self, x, seq_lens, h0, c0):
        spec = self.spec
        x = np.asarray(x, dtype=spec.dtype)
        if not spec.batch_first:
            x = x.transpose(1, 0, 2)
        B, T = x.shape[:2]
        inputs = [tf.constant(x)]
        if seq_lens is not None:
            inputs.append(tf.constant(np.arange(T)[None, :] < np.asarray(seq_lens)[:, None]))
        shape = (spec.num_layers * spec.num_directions, B, spec.hidden_size)
        h0 = np.zeros(shape, spec.dtype) if h0 is None else np.asarray(h0, spec.dtype)
        c0 = np.zeros(shape, spec.dtype) if c0 is None else np.asarray(c0, spec.dtype)
        for row in range(shape[0]):
            inputs.append(tf.constant(h0[row]))
            if spec.cell is Cell.LSTM:
                inputs.append(tf.constant(c0[row]))
        return inputs

    def _outputs(self, out) -> Outputs:
        result = {k: v.numpy() for k, v in out.items()}
        if not self.spec.batch_first:
            result["y"] = result["y"].transpose(1, 0, 2)
        return Outputs(**result)

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs:
        _, _, forward, _ = self._variant(seq_lens is not None)
        return self._outputs(forward(self._inputs(x, seq_lens, h0, c0)))

    def runner(self, x):
        """(run, to_outputs) for timing: run() is one forward on inputs made once, its outputs
        materialised (.numpy()) inside."""
        _, _, forward, _ = self._variant(False)
        inputs = self._inputs(x, None, None, None)

        def run():
            return {k: v.numpy() for k, v in forward(inputs).items()}

        def to_outputs(out) -> Outputs:
            y = out["y"] if self.spec.batch_first else out["y"].transpose(1, 0, 2)
            return Outputs(**{**out, "y": y})

        return run, to_outputs

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        spec = self.spec
        _, rnn_layers, _, grad = self._variant(seq_lens is not None)
        inputs = self._inputs(x, seq_lens, h0, c0)
        cot = {k: np.asarray(v, dtype=spec.dtype) for k, v in cotangents.items()}
        if "y" in cot and not spec.batch_first:
            cot["y"] = cot["y"].transpose(1, 0, 2)
        d_vars, d_head, d_inputs = grad(inputs, {k: tf.constant(v) for k, v in cot.items()})
        d_vars = [g.numpy() for g in d_vars]
        per_layer = [d_vars[i : i + 3] for i in range(0, len(d_vars), 3)]
        d_head = [g.numpy() for g in d_head] or None
        canonical = dict(canonical_from_keras_arrays(spec, per_layer, d_head))
        if spec.cell is not Cell.GRU:  # d(Wb + Rb): the same gradient reaches both
            for layer in range(spec.num_layers):
                canonical[f"l{layer}.Rb"] = canonical[f"l{layer}.Wb"]
        return {**canonical, **self._input_grads(d_inputs, seq_lens is not None)}

    def _input_grads(self, d_inputs, with_mask: bool) -> dict:
        spec = self.spec
        dx = d_inputs[0].numpy()
        grads = {"x": dx if spec.batch_first else dx.transpose(1, 0, 2)}
        states = [g.numpy() for g in d_inputs[2 if with_mask else 1 :]]
        n = 2 if spec.cell is Cell.LSTM else 1
        grads["h0"] = np.stack(states[0::n])
        if n == 2:
            grads["c0"] = np.stack(states[1::n])
        return grads

    def train_sgd(self, xs, ys, lr: float, max_norm: float, frozen=()):
        """SGD on mean squared error of the head, clipped by tf.clip_by_global_norm.
        Keras has no Rb to freeze for RNN/LSTM: its one bias plays the part of Wb. The update
        is v -= lr * g in the variable's dtype: keras.optimizers.SGD keeps its learning rate
        in a float32 variable, which puts a 1.5e-8 relative error into every float64 step."""
        model = self._variant(False)[0]
        step = self._sgd_step(lambda inputs: model(inputs, training=True)["head"], lr, max_norm)
        losses = [
            float(step(self._inputs(x, None, None, None), tf.constant(y)))
            for x, y in zip(xs, ys, strict=True)
        ]
        return losses, self._canonical_now()

    def sgd_runner(self, x, goal, lr: float):
        """(run, weights_now) for timing a training step: run() is one unclipped SGD step on
        mean((y - goal)^2) and returns the loss, materialised; goal is [T, B, H]."""
        model = self._variant(False)[0]
        step = self._sgd_step(lambda inputs: model(inputs, training=True)["y"], lr, None)
        inputs = self._inputs(x, None, None, None)
        goal = np.asarray(goal, self.spec.dtype)
        y = tf.constant(goal if self.spec.batch_first else goal.transpose(1, 0, 2))
        return (lambda: step(inputs, y).numpy()), (lambda: dict(self._canonical_now()))

    def _sgd_step(self, predict, lr: float, max_norm: float | None):
        """step(inputs, y) -> loss: v -= lr * g for every trainable variable (mode-compiled)."""
        model, rnn_layers, _, _ = self._variant(False)
        rnn_variables, head_variables = trainable_variables(model, rnn_layers)
        variables = rnn_variables + head_variables

        def step(inputs, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((predict(inputs) - y) ** 2)
            grads = tape.gradient(loss, variables)
            if max_norm is not None:
                grads, _ = tf.clip_by_global_norm(grads, max_norm)
            for variable, g in zip(variables, grads, strict=True):
                variable.assign_sub(lr * g)
            return loss

        if self.mode != "eager":
            step = tf.function(step, jit_compile=self.mode == "xla")
        return step

    def _canonical_now(self) -> CanonicalWeights:
        model, rnn_layers, _, _ = self._variant(False)
        per_layer = [rnn.cell.get_weights() for rnn in rnn_layers]
        head = model.get_layer("head").get_weights() if self.spec.head is not None else None
        return canonical_from_keras_arrays(self.spec, per_layer, head)
