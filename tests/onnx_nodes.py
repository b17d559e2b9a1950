"""Single ONNX RNN/LSTM/GRU nodes built with onnx.helper, for checking the NumPy oracle."""

from __future__ import annotations

import numpy as np

OP_TYPE = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
INPUT_ORDER = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


def single_op_model(cell, inputs: dict[str, np.ndarray], **attributes):
    """A model with one recurrent node; every given input is a graph input. Returns the model
    and the output names."""
    import onnx
    from onnx import helper

    elem = helper.np_dtype_to_tensor_dtype(inputs["X"].dtype)
    names = [n if n in inputs else "" for n in INPUT_ORDER]
    while names[-1] == "":
        names.pop()
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    hidden = inputs["R"].shape[-1]
    node = helper.make_node(OP_TYPE[cell], names, outputs, hidden_size=hidden, **attributes)
    graph_inputs = [
        helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(inputs[n].dtype), inputs[n].shape
        )
        for n in names
        if n
    ]
    T, B = inputs["X"].shape[:2]
    if attributes.get("layout", 0) == 1:
        T, B = B, T
    D, H = inputs["R"].shape[0], hidden
    y_shape, state_shape = (T, D, B, H), (D, B, H)
    if attributes.get("layout", 0) == 1:
        y_shape, state_shape = (B, T, D, H), (B, D, H)
    shapes = {"Y": y_shape, "Y_h": state_shape, "Y_c": state_shape}
    graph_outputs = [helper.make_tensor_value_info(n, elem, shapes[n]) for n in outputs]
    graph = helper.make_graph([node], "single_rnn_op", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model, outputs
