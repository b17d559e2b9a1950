"""Model files made the way users make them, for `rnnbench parity --model` and `--against`:
torch modules saved as TorchScript (scripted or traced), an ExportedProgram or a state_dict,
and exported by torch.onnx; Keras models saved as .keras or .h5 and exported by tf2onnx. Each
generator draws its own weights from its seed."""

from __future__ import annotations

import numpy as np

from backends.onnx_export import quiet_export


def torch_net(
    cell="gru",
    *,
    I=4,
    H=6,
    layers=1,
    bidirectional=False,
    batch_first=True,
    head=3,
    softmax=False,
    last_step=False,
    bias=True,
    seed=0,
):
    """nn.RNN/LSTM/GRU (+ a Linear head on the final states, or on y's last step: the same for
    one direction), scriptable: the options are the module's attributes."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    kind = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    D = 2 if bidirectional else 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = kind(
                I,
                H,
                num_layers=layers,
                bidirectional=bidirectional,
                batch_first=batch_first,
                bias=bias,
            )
            self.fc = nn.Linear(D * H, head if head else 1)
            self.has_head, self.softmax, self.bf = bool(head), softmax, batch_first
            self.bi, self.last_step, self.H = bidirectional, last_step, H

        def forward(self, x):
            y = self.rnn(x)[0]
            if not self.has_head:
                return y
            first = y[:, 0] if self.bf else y[0]
            last = y[:, -1] if self.bf else y[-1]
            if self.bi and not self.last_step:  # each direction's final state
                last = torch.cat([last[:, : self.H], first[:, self.H :]], 1)
            out = self.fc(last)
            if self.softmax:
                out = torch.softmax(out, -1)
            return out

    net = Net().eval()
    with torch.no_grad():  # biases and weights well away from zero, so that they count
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    if not head:
        net.fc = nn.Identity()
    return net


def example(net, T=5, B=2):
    import torch

    I = net.rnn.input_size
    return torch.randn(*((B, T) if net.rnn.batch_first else (T, B)), I)


def save_scripted(net, path):
    import torch

    torch.jit.save(torch.jit.script(net), str(path))
    return path


def save_traced(net, path):
    import torch

    torch.jit.save(torch.jit.trace(net, example(net)), str(path))
    return path


def save_exported_program(net, path):
    import torch

    batch = 0 if net.rnn.batch_first else 1
    program = torch.export.export(
        net, (example(net),), dynamic_shapes=({batch: torch.export.Dim("B")},)
    )
    torch.export.save(program, str(path))
    return path


def save_state_dict(net, path):
    import torch

    torch.save(net.state_dict(), str(path))
    return path


def export_onnx(net, path, dynamo=False, T=5):
    """torch.onnx.export with T and B dynamic, as a user would."""
    import onnx
    import torch

    x = example(net, T=T)
    t_axis, b_axis = (1, 0) if net.rnn.batch_first else (0, 1)
    kwargs = {"input_names": ["x"], "output_names": ["out"], "dynamo": dynamo}
    if dynamo:
        dims = {t_axis: torch.export.Dim("T"), b_axis: torch.export.Dim("B")}
        kwargs["dynamic_shapes"] = (dims,)
    else:
        kwargs.update(dynamic_axes={"x": {t_axis: "T", b_axis: "B"}}, opset_version=17)
    with quiet_export():
        torch.onnx.export(net, (x,), str(path), **kwargs)
    onnx.save(onnx.load(str(path)), str(path))  # weights inline, one file
    return path


def keras_model(
    kind="gru",
    *,
    I=5,
    H=6,
    layers=1,
    bidirectional=False,
    head=3,
    activation="softmax",
    functional=True,
    return_sequences=False,
    dropout=False,
    reset_after=True,
    seed=0,
):
    import keras

    keras.utils.set_random_seed(seed)
    layer = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
    extra = {"reset_after": reset_after} if kind == "gru" else {}
    stack = []
    for n in range(layers):
        sequences = return_sequences or n + 1 < layers
        rnn = layer[kind](H, return_sequences=sequences, **extra)
        stack.append(keras.layers.Bidirectional(rnn) if bidirectional else rnn)
        if dropout and n + 1 < layers:
            stack.append(keras.layers.Dropout(0.3))
    if head:
        stack.append(keras.layers.Dense(head, activation=activation))
    if functional:
        x = keras.Input((None, I), name="x")
        y = x
        for item in stack:
            y = item(y)
        model = keras.Model(x, y)
    else:
        model = keras.Sequential([keras.Input((None, I)), *stack])
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # Keras starts biases at zero: make them count
        weight.assign(rng.uniform(-0.5, 0.5, weight.shape))
    return model


def export_tf2onnx(model, path):
    import keras
    import tensorflow as tf
    import tf2onnx

    from harness.quiet import native_stderr_captured

    I = model.inputs[0].shape[-1]
    x = keras.Input((None, I), name="x")
    functional = keras.Model(x, model(x))
    signature = [tf.TensorSpec((None, None, I), tf.float32, name="x")]
    with quiet_export(), native_stderr_captured():
        tf2onnx.convert.from_keras(
            functional, input_signature=signature, opset=17, output_path=str(path)
        )
    return path


def perturb_onnx(path, out, which="one-R", delta=1e-2, input_size=None):
    """A copy of an ONNX file with one element of its recurrent weight R moved by delta
    ("one-R": a native node's R, else the largest square-ish 2-D initializer), or every element
    of its input weight W ("all-W": a native node's W, else the [I, G*H] kernel)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    native = next((n for n in model.graph.node if n.op_type in ("RNN", "LSTM", "GRU")), None)
    if native is not None and all(i in inits for i in native.input[1:3]):
        target = inits[native.input[2] if which == "one-R" else native.input[1]]
    elif which == "one-R":
        square = [t for t in inits.values() if len(t.dims) == 2 and t.dims[0] != input_size]
        target = max(square, key=lambda t: int(np.prod(t.dims)))
    else:
        target = next(t for t in inits.values() if len(t.dims) == 2 and t.dims[0] == input_size)
    value = numpy_helper.to_array(target).copy()
    if which == "one-R":
        value.flat[value.size // 2] += delta
    else:
        value += np.asarray(delta, value.dtype)
    target.CopyFrom(numpy_helper.from_array(value, target.name))
    onnx.save(model, str(out))
    return out


def keras_front(kind="lstm", *, front="masking", I=5, V=40, H=6, layers=1, head=3, seed=0):
    """A Keras model that masks or embeds before its recurrence: front "masking" (Masking(0.0)
    on x), "embedding" (Embedding(V, I) on integer tokens) or "embedding-mask"
    (Embedding(mask_zero=True)); its input is named x or tokens."""
    import keras

    keras.utils.set_random_seed(seed)
    layer = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
    if front == "masking":
        x = keras.Input((None, I), name="x")
        y = keras.layers.Masking(0.0)(x)
    else:
        x = keras.Input((None,), dtype="int32", name="tokens")
        y = keras.layers.Embedding(V, I, mask_zero=front == "embedding-mask")(x)
    for n in range(layers):
        y = layer[kind](H, return_sequences=n + 1 < layers or not head)(y)
    if head:
        y = keras.layers.Dense(head)(y)
    model = keras.Model(x, y)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.uniform(-0.5, 0.5, weight.shape))
    return model


def keras_without_front(model):
    """The same recurrent layers and head with the front end left out (an export that drops
    a Masking layer): float x in."""
    import keras

    rnns = [
        layer for layer in model.layers if layer.weights and type(layer).__name__ != "Embedding"
    ]
    I = rnns[0].weights[0].shape[0]
    x = keras.Input((None, I), name="x")
    y = x
    for layer in rnns:
        y = layer.__class__.from_config(layer.get_config())(y)
    plain = keras.Model(x, y)
    plain.set_weights([w for layer in rnns for w in layer.get_weights()])
    return plain


def chaotic_onnx(path, gain=3.0, *, H=16, I=4, seed=0):
    """An ONNX RNN node with recurrent gain `gain` (R ~ gain N(0, 1/H)): above about 1 its
    largest Lyapunov exponent is positive (an expanding model). T and B dynamic, Y out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((1, H, I)) / np.sqrt(I)).astype(np.float32)
    R = (gain * rng.standard_normal((1, H, H)) / np.sqrt(H)).astype(np.float32)
    bias = np.zeros((1, 2 * H), np.float32)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "B", H])
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    inits = [numpy_helper.from_array(v, n) for n, v in (("W", W), ("R", R), ("B", bias))]
    graph = helper.make_graph([node], "chaotic", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def export_tf2onnx_tokens(model, path):
    """tf2onnx of a Keras model on integer tokens [B, T]."""
    import tensorflow as tf
    import tf2onnx

    from harness.quiet import native_stderr_captured

    signature = [tf.TensorSpec((None, None), tf.int32, name="tokens")]
    with quiet_export(), native_stderr_captured():
        tf2onnx.convert.from_keras(
            model, input_signature=signature, opset=17, output_path=str(path)
        )
    return path


def torch_embedding_net(cell="lstm", *, V=50, I=6, H=8, batch_first=True, seed=0):
    """nn.Embedding -> nn.RNN/LSTM/GRU -> nn.Linear on the last layer's final state: the text
    classifier, taking integer tokens."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    kind = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, I)
            self.rnn = kind(I, H, batch_first=batch_first)
            self.fc = nn.Linear(H, 3)

        def forward(self, tokens):
            y = self.rnn(self.emb(tokens))[0]
            return self.fc(y[:, -1] if self.rnn.batch_first else y[-1])

    net = Classifier().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net


def example_tokens(net, T=5, B=2):
    import torch

    shape = (B, T) if net.rnn.batch_first else (T, B)
    return torch.randint(0, net.emb.num_embeddings, shape)


def export_onnx_tokens(net, path, dynamo=False):
    """torch.onnx.export of a token model, T and B dynamic."""
    import onnx
    import torch

    t_axis, b_axis = (1, 0) if net.rnn.batch_first else (0, 1)
    kwargs = {"input_names": ["tokens"], "output_names": ["out"], "dynamo": dynamo}
    if dynamo:
        dims = {t_axis: torch.export.Dim("T"), b_axis: torch.export.Dim("B")}
        kwargs["dynamic_shapes"] = (dims,)
    else:
        kwargs.update(dynamic_axes={"tokens": {t_axis: "T", b_axis: "B"}}, opset_version=17)
    with quiet_export():
        torch.onnx.export(net, (example_tokens(net),), str(path), **kwargs)
    onnx.save(onnx.load(str(path)), str(path))
    return path
