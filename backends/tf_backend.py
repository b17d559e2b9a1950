"""TensorFlow / Keras 3: the canonical model (backends/tf_model.py) run eagerly, in
tf.function, or compiled by XLA."""

from __future__ import annotations

import contextlib

import numpy as np

from backends import mingru
from backends.tf_model import (
    build_keras_model,
    canonical_from_keras_arrays,
    check_supported,
    import_keras_model,
    keras,
    one_bias,
    set_canonical_weights,
    tf,
    trainable_variables,
)
from harness.model.outputs import Outputs
from harness.model.protocol import BaseBackend, BasePrepared
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import CanonicalWeights

__all__ = ["KerasBackend", "PreparedKeras", "import_keras_model", "keras", "tf"]
MODES = ("eager", "function", "xla")
IMPL_CLASS = {
    "eager": "Keras RNN, TF eager (a Python-driven while loop: per-step dispatch)",
    "function": "Keras RNN loop in tf.function",
    "xla": "Keras RNN loop compiled by XLA",
}


class KerasBackend(BaseBackend):
    def __init__(self, mode: str = "eager"):
        if mode not in MODES:
            raise ValueError(f"tf mode {mode!r}: allowed {', '.join(MODES)}")
        self.mode = mode
        self.impl_label = f"TF {mode}"
        self.product_label = f"tf.matmul ({mode})"

    def set_threads(self, n: int) -> dict:
        threading = tf.config.threading
        # TensorFlow fixes its pools once per process: a worker is fresh, a test process may
        # not be; what they really are gets recorded either way
        with contextlib.suppress(RuntimeError):
            threading.set_intra_op_parallelism_threads(n)
            threading.set_inter_op_parallelism_threads(n)
        pools = {
            "intra_op": threading.get_intra_op_parallelism_threads(),
            "inter_op": threading.get_inter_op_parallelism_threads(),
        }
        return {"tensorflow": pools}

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedKeras:
        return self.named(PreparedKeras(spec, weights, self.mode))

    def _compiled(self, fn):
        if self.mode == "eager":
            return fn
        return tf.function(fn, jit_compile=self.mode == "xla")

    def product_runner(self, pairs, dtype: str):
        """tf.matmul has no output argument: each call allocates its outputs."""
        operands = [
            (tf.constant(np.asarray(a, dtype)), tf.constant(np.asarray(b, dtype))) for a, b in pairs
        ]
        product = self._compiled(lambda: [tf.matmul(a, b) for a, b in operands])
        return (lambda: [c.numpy() for c in product()]), (lambda result: result)

    def mingru_runner(self, weights, x, sequential: bool):
        forward, xt = mingru.tf_forward(weights, self.mode), tf.constant(x)
        return (lambda: [t.numpy() for t in forward(xt, sequential)]), (lambda out: out)


class PreparedKeras(BasePrepared):
    def __init__(self, spec: ModelSpec, weights: CanonicalWeights, mode: str):
        check_supported(spec)
        self.spec, self.weights, self.mode = spec, weights, mode
        self._variants: dict[bool, tuple] = {}
        self.impl_class = IMPL_CLASS[mode]
        self.train_impl_class = f"{IMPL_CLASS[mode]}, GradientTape"
        # One bias b = Wb + Rb: an SGD step moves it by lr * g where two biases move their sum
        # by 2 lr * g, so the updated biases are another model's (the loss, W and R still agree)
        self.train_other_parameters = ("Wb", "Rb") if one_bias(spec) else ()

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

    def forward_runner(self, x):
        """run() is one forward on inputs made once, its outputs materialised (.numpy())."""
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
        if one_bias(spec):  # d(Wb + Rb): the same gradient reaches both
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

    def train_step_runner(self, x, goal, lr: float):
        """run() is one unclipped SGD step on mean((y - goal)^2), its loss materialised."""
        model = self._variant(False)[0]
        step = self._sgd_step(lambda inputs: model(inputs, training=True)["y"], lr, None)
        inputs = self._inputs(x, None, None, None)
        goal = np.asarray(goal, self.spec.dtype)
        y = tf.constant(goal if self.spec.batch_first else goal.transpose(1, 0, 2))
        return (lambda: step(inputs, y).numpy()), (
            lambda loss: (float(loss), dict(self._canonical_now()))
        )

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
                if g is not None:  # a loss on y leaves the head untouched
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

    def step_runner(self):
        from backends.streaming.tf_step import tf_step_runner

        model, rnn_layers = self._variant(False)[:2]
        return tf_step_runner(self.spec, self.mode, model, rnn_layers)
