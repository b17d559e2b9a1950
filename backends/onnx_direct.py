"""The direct ONNX builder: native RNN/LSTM/GRU nodes written from the canonical weights.

The canonical layout is the ONNX layout, so the weights go in as they are (B = [Wb ; Rb]).
Recurrent nodes use layout=0 (ONNX Runtime rejects batch-first recurrent ops); a batch-first
model transposes outside them. Layers chain through Transpose + Reshape ([T, D, B, H] ->
[T, B, D*H]). T and B are symbolic: one file serves every batch size and sequence length.
Graph I/O: x, seq_lens [B] int32 (optional), h0 [L*D, B, H], c0 (LSTM) -> y, h_n, c_n, head.
Every variant of the cell the spec names (GRU linear_before_reset, LSTM peepholes and
input_forget, clip) is an attribute or input of the ONNX operator: written as the spec says.
"""

from __future__ import annotations

import numpy as np

from harness.model.protocol import NotSupported
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import CanonicalWeights

OP_TYPE = {Cell.RNN: "RNN", Cell.LSTM: "LSTM", Cell.GRU: "GRU"}
OPSET = 22


class _Graph:
    """Nodes and initializers under construction, with fresh names."""

    def __init__(self, dtype):
        from onnx import helper

        self.helper, self.nodes, self.inits, self.dtype = helper, [], [], np.dtype(dtype)

    def const(self, name, array):
        self.inits.append(
            self.helper.make_tensor(
                name,
                self.helper.np_dtype_to_tensor_dtype(np.asarray(array).dtype),
                np.shape(array),
                np.asarray(array).flatten().tolist(),
            )
        )
        return name

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(self.helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def build_direct_model(
    spec: ModelSpec,
    weights: CanonicalWeights,
    with_lens: bool = True,
    linear_before_reset: int | None = None,
):
    """The model as an onnx.ModelProto. `linear_before_reset` overrides the spec's, to
    reproduce the exporter bug that dropped it (a file that is not the model it claims)."""
    from onnx import TensorProto, helper

    g = _Graph(spec.dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
    D, H, L = spec.num_directions, spec.hidden_size, spec.num_layers
    x_shape: list[str | int] = (
        ["B", "T", spec.input_size] if spec.batch_first else ["T", "B", spec.input_size]
    )
    inputs = [helper.make_tensor_value_info("x", elem, x_shape)]
    if with_lens:
        inputs.append(helper.make_tensor_value_info("seq_lens", TensorProto.INT32, ["B"]))
    states = ["h0"] + (["c0"] if spec.cell is Cell.LSTM else [])
    inputs += [helper.make_tensor_value_info(n, elem, [L * D, "B", H]) for n in states]
    seq = g.node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2]) if spec.batch_first else "x"
    finals: dict[str, list[str]] = {"h": [], "c": []}
    direction = "bidirectional" if spec.bidirectional else "forward"
    attrs = variant_attributes(spec, linear_before_reset)
    for layer in range(L):
        W, R, Wb, Rb = weights.layer(layer)
        rows = [
            g.const(f"rows{layer}_{k}", np.array([v]))
            for k, v in (("start", layer * D), ("end", (layer + 1) * D))
        ]
        rows.append(g.const(f"rows{layer}_axis", np.array([0])))
        init = [g.node("Slice", [s, *rows], [f"{s}_l{layer}"]) for s in states]
        node_inputs = [
            seq,
            g.const(f"W{layer}", W),
            g.const(f"R{layer}", R),
            g.const(f"B{layer}", np.concatenate([Wb, Rb], axis=1)),
            "seq_lens" if with_lens else "",
            *init,
        ]
        if spec.peepholes:
            node_inputs.append(g.const(f"P{layer}", weights.peepholes(layer)))
        outs = [f"Y{layer}", f"Y_h{layer}"] + ([f"Y_c{layer}"] if spec.cell is Cell.LSTM else [])
        g.node(
            OP_TYPE[spec.cell],
            node_inputs,
            outs,
            hidden_size=H,
            direction=direction,
            layout=0,
            **attrs,
        )
        finals["h"].append(outs[1])
        if spec.cell is Cell.LSTM:
            finals["c"].append(outs[2])
        seq = _concat_directions(g, outs[0], f"seq{layer}", D * H)
    outputs = _outputs(g, spec, weights, seq, finals, elem)
    graph = helper.make_graph(g.nodes, f"rnnbench_{spec.cell.value}", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    return model


# the ONNX operators' own forms of a cell (peepholes are the input P); a variant added to
# harness/model/spec.py that is not one of them is refused, never written as the plain cell
ONNX_FORMS = ("linear_before_reset", "peepholes", "input_forget", "clip")


def variant_attributes(spec: ModelSpec, linear_before_reset: int | None) -> dict[str, float]:
    unknown = [name for name in spec.variants if name not in ONNX_FORMS]
    if unknown:
        raise NotSupported(
            f"the ONNX {spec.cell.value.upper()} operator has no form of {', '.join(unknown)} "
            f"(it has {', '.join(ONNX_FORMS)})"
        )
    attrs: dict[str, float] = {}
    if spec.cell is Cell.GRU:
        lbr = int(spec.linear_before_reset) if linear_before_reset is None else linear_before_reset
        attrs["linear_before_reset"] = lbr
    if spec.input_forget:
        attrs["input_forget"] = 1
    if spec.clip is not None:
        attrs["clip"] = spec.clip
    return attrs


def _concat_directions(g: _Graph, Y: str, name: str, width: int) -> str:
    """[T, D, B, H] -> [T, B, D*H]."""
    t = g.node("Transpose", [Y], [f"{name}_t"], perm=[0, 2, 1, 3])
    return g.node("Reshape", [t, g.const(f"{name}_shape", np.array([0, 0, width]))], [name])


def _outputs(g: _Graph, spec: ModelSpec, weights: CanonicalWeights, seq: str, finals, elem):
    from onnx import helper

    D, H, L = spec.num_directions, spec.hidden_size, spec.num_layers
    if spec.batch_first:
        g.node("Transpose", [seq], ["y"], perm=[1, 0, 2])
    else:
        g.node("Identity", [seq], ["y"])
    g.node("Concat", finals["h"], ["h_n"], axis=0)
    y_shape: list[str | int] = ["B", "T", D * H] if spec.batch_first else ["T", "B", D * H]
    outputs = [
        helper.make_tensor_value_info("y", elem, y_shape),
        helper.make_tensor_value_info("h_n", elem, [L * D, "B", H]),
    ]
    if finals["c"]:
        g.node("Concat", finals["c"], ["c_n"], axis=0)
        outputs.append(helper.make_tensor_value_info("c_n", elem, [L * D, "B", H]))
    if spec.head is not None:
        last = g.node("Transpose", [finals["h"][-1]], ["head_bdh"], perm=[1, 0, 2])
        head_in = g.node(
            "Reshape", [last, g.const("head_shape", np.array([0, D * H]))], ["head_in"]
        )
        logits = "head" if spec.head.activation == "none" else "logits"
        W, b = g.const("head_W", weights["head.W"]), g.const("head_b", weights["head.b"])
        g.node("Gemm", [head_in, W, b], [logits], transB=1)
        if logits != "head":
            g.node("Softmax", [logits], ["head"], axis=-1)
        outputs.append(helper.make_tensor_value_info("head", elem, ["B", spec.head.units]))
    return outputs
