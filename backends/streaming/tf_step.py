"""The Keras / TensorFlow step: the model's own Keras cells (LSTMCell, GRUCell, SimpleRNNCell,
the weights the whole-sequence model holds) called on one step with the carried state, and
its Dense head; eagerly, in tf.function, or compiled by XLA, as the backend's mode says. The
compiled forms take any batch (the input signature leaves B open), so a server's batches of
varying size never retrace."""

from __future__ import annotations

import numpy as np

from backends.streaming.base import StepRunner, check_streamable
from backends.tf_model import tf
from harness.model.spec import Cell

LABEL = {"eager": "TF eager", "function": "tf.function", "xla": "tf.function compiled by XLA"}


def tf_step_runner(spec, mode: str, model, rnn_layers) -> StepRunner:
    """model, rnn_layers: the whole-sequence keras.Model that backends/tf_model.py builds and
    its RNN layers, in mode eager | function | xla."""
    check_streamable(spec)
    head = model.get_layer("head") if spec.head is not None else None
    n = 2 if spec.cell is Cell.LSTM else 1
    L, H = spec.num_layers, spec.hidden_size

    def one_step(x, states):
        inp, new = x, []
        for layer, rnn in enumerate(rnn_layers):
            inp, carried = rnn.cell(inp, list(states[layer * n : (layer + 1) * n]), training=False)
            new += tf.nest.flatten(carried)
        return inp, new, (head(inp) if head is not None else inp)

    def identity(x):
        return x + 0

    run, noop_run = one_step, identity
    if mode != "eager":
        x_spec = tf.TensorSpec([None, spec.input_size], spec.dtype)
        s_spec = [tf.TensorSpec([None, H], spec.dtype)] * (L * n)
        jit = mode == "xla"
        run = tf.function(one_step, input_signature=[x_spec, s_spec], jit_compile=jit)
        noop_run = tf.function(identity, input_signature=[x_spec], jit_compile=jit)

    def step(x_t, state):
        y, new, out = run(tf.constant(x_t), state)
        return (y.numpy(), out.numpy() if head is not None else None), new

    def to_state(h, c):
        return [
            tf.constant(np.asarray(a[k], spec.dtype))
            for k in range(L)
            for a in ((h, c) if n == 2 else (h,))
        ]

    def from_state(state):
        arrays = [s.numpy() for s in state]
        h = np.stack(arrays[0::n])
        return h, (np.stack(arrays[1::n]) if n == 2 else None)

    def zero_state(batch):
        return [tf.zeros((batch, H), spec.dtype) for _ in range(L * n)]

    def noop(x_t):
        return noop_run(tf.constant(x_t)).numpy()

    cells = type(rnn_layers[0].cell).__name__
    return StepRunner(
        step,
        zero_state,
        to_state,
        from_state,
        noop,
        f"Keras {cells} on one step ({LABEL[mode]})",
        f"TF ({LABEL[mode]}): the input made a tensor, one add of 0, the output out",
    )
