"""ONNX files made the way users make them, for `rnnbench parity --onnx`: torch.onnx.export
(TorchScript and dynamo, static and dynamic shapes), tf2onnx.convert.from_keras (fixed and None
time dimension) and native nodes built with onnx.helper (every direction, sequence_lens,
initial states). Each generator draws its own weights from its seed and writes `path`.
"""

from __future__ import annotations

import numpy as np

from backends.onnx_export import quiet_export

OP_TYPE = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def torch_file(
    path,
    cell="lstm",
    *,
    I=3,
    H=4,
    layers=1,
    bidirectional=False,
    T=5,
    B=2,
    batch_first=True,
    with_states=False,
    dynamo=False,
    dynamic=True,
    seed=0,
):
    """An nn.RNN/LSTM/GRU exported as a user would: x (and h0[, c0] when with_states) in,
    (y, h_n[, c_n]) out; `dynamic` marks T and B dynamic, else the example's shapes stay."""
    import torch

    torch.manual_seed(seed)
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = kind(I, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x, h0=None, c0=None):
            if h0 is None:
                y, final = self.rnn(x)
            else:
                y, final = self.rnn(x, (h0, c0) if cell == "lstm" else h0)
            return (y, *final) if cell == "lstm" else (y, final)

    x = torch.randn(*((B, T) if batch_first else (T, B)), I)
    state = torch.randn(layers * (2 if bidirectional else 1), B, H)
    args = (x,) + ((state, state.clone()) if cell == "lstm" else (state,)) * with_states
    names = ["x"] + (["h0", "c0"] if cell == "lstm" else ["h0"])[: len(args) - 1]
    outputs = ["y", "h_n"] + (["c_n"] if cell == "lstm" else [])
    kwargs = {"input_names": names, "output_names": outputs, "dynamo": dynamo}
    t_axis, b_axis = (1, 0) if batch_first else (0, 1)
    if dynamic and dynamo:
        dims = torch.export.Dim("T", min=1), torch.export.Dim("B", min=1)
        x_dims = {t_axis: dims[0], b_axis: dims[1]}
        kwargs["dynamic_shapes"] = (x_dims, *([{1: dims[1]}] * (len(args) - 1)))
    elif dynamic:
        axes = {"x": {t_axis: "T", b_axis: "B"}} | {n: {1: "B"} for n in names[1:]}
        kwargs["dynamic_axes"] = axes
    if not dynamo:
        kwargs["opset_version"] = 17
    with quiet_export():
        torch.onnx.export(Net().eval(), args, str(path), **kwargs)
    _inline(path)
    return path


def _inline(path) -> None:
    """The dynamo exporter may write weights beside the model: keep one self-contained file."""
    import os

    import onnx

    model = onnx.load(str(path))
    onnx.save(model, str(path))
    if os.path.exists(f"{path}.data"):
        os.remove(f"{path}.data")


def keras_file(
    path,
    cell="lstm",
    *,
    I=3,
    H=4,
    T=None,
    bidirectional=False,
    return_sequences=True,
    with_states=False,
    seed=0,
):
    """A functional Keras model converted with tf2onnx.convert.from_keras, T fixed or None."""
    import keras
    import tf2onnx
    from tensorflow import TensorSpec

    keras.utils.set_random_seed(seed)
    kind = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
    layer = kind[cell](H, return_sequences=return_sequences, return_state=True)
    x = keras.Input((T, I), name="x")
    states = [keras.Input((H,), name=n) for n in ("h0", "c0")[: 1 + (cell == "lstm")]]
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
        out = layer(x)
    else:
        out = layer(x, initial_state=states) if with_states else layer(x)
    inputs = [x] + states * with_states
    model = keras.Model(inputs, list(out))
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # Keras starts biases at zero: make them count
        weight.assign(rng.uniform(-0.5, 0.5, weight.shape))
    signature = [TensorSpec(i.shape, "float32", name=i.name) for i in model.inputs]
    with quiet_export():
        tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=path)
    return path


def node_file(
    path,
    cell="lstm",
    *,
    direction="forward",
    I=3,
    H=4,
    layers=1,
    T=5,
    B=2,
    static=True,
    with_lens=False,
    with_states=False,
    seed=0,
    **attributes,
):
    """Native nodes built with onnx.helper, stacked `layers` deep: W, R, B initializers; X,
    sequence_lens and initial states graph inputs (states [D, B, H] per layer); outputs the
    last node's Y [T, D, B, H] and every node's Y_h (and Y_c). Dims static or named T, B."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    D, GH = (2 if direction == "bidirectional" else 1), GATES[cell] * H
    t, b = (T, B) if static else ("T", "B")
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", f32, [t, b, I])]
    if with_lens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [b]))
    nodes, inits, outputs, x = [], [], [], "X"
    for layer in range(layers):
        size = I if layer == 0 else D * H
        for name, shape in (("W", (D, GH, size)), ("R", (D, GH, H)), ("B", (D, 2 * GH))):
            value = rng.uniform(-0.6, 0.6, shape).astype(np.float32)
            inits.append(numpy_helper.from_array(value, f"{name}{layer}"))
        slots = [x, f"W{layer}", f"R{layer}", f"B{layer}", "sequence_lens" if with_lens else ""]
        states = ("h", "c") if cell == "lstm" else ("h",)
        if with_states:
            slots += [f"initial_{s}{layer}" for s in states]
            inputs += [
                helper.make_tensor_value_info(f"initial_{s}{layer}", f32, [D, b, H]) for s in states
            ]
        while not slots[-1]:
            slots.pop()
        outs = [f"Y{layer}"] + [f"Y_{s}{layer}" for s in states]
        if cell == "gru":
            attributes.setdefault("linear_before_reset", 1)
        nodes.append(
            helper.make_node(
                OP_TYPE[cell], slots, outs, hidden_size=H, direction=direction, **attributes
            )
        )
        outputs += [helper.make_tensor_value_info(o, f32, [D, b, H]) for o in outs[1:]]
        if layer + 1 < layers:  # Y [T, D, B, H] -> [T, B, D*H], the next layer's X
            perm = f"Yt{layer}"
            nodes.append(helper.make_node("Transpose", [outs[0]], [perm], perm=[0, 2, 1, 3]))
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"s{layer}"))
            x = f"X{layer + 1}"
            nodes.append(helper.make_node("Reshape", [perm, f"s{layer}"], [x]))
    outputs.insert(0, helper.make_tensor_value_info(f"Y{layers - 1}", f32, [t, D, b, H]))
    graph = helper.make_graph(nodes, "user_rnn", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def corrupt_one_weight(path, out, delta=0.25):
    """A copy of the file with one element of its first W-shaped initializer moved by delta."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = next(t for t in model.graph.initializer if len(t.dims) == 3)
    value = numpy_helper.to_array(init).copy()
    value.flat[0] += delta
    init.CopyFrom(numpy_helper.from_array(value, init.name))
    onnx.save(model, str(out))
    return out
