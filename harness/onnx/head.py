"""The dense head of a user's ONNX file: a Gemm (or MatMul + Add) reading the last recurrent
node's final states (or, one direction only, its last step), and an optional Softmax after
it. Found by walking the consumers of that node's outputs (harness/onnx/graph.py)."""

from __future__ import annotations

import numpy as np

from harness.files.limits import Refused
from harness.model.protocol import NotSupported
from harness.model.spec import Head, ModelSpec
from harness.onnx.graph import GraphIndex, attributes, declared_dims
from harness.onnx.values import Values

HEAD_ACTIVATIONS = ("Sigmoid", "LogSoftmax", "Relu", "Tanh", "HardSigmoid", "Softplus")


def read_head(model, index: GraphIndex, values: Values, spec: ModelSpec, last):
    """({"head.W", "head.b"}, Head) of the head on `last` (a RecurrentNode), or None."""
    width = spec.num_directions * spec.hidden_size
    finals = index.downstream([last.outputs.get("Y_h", "")])
    sequence = index.downstream([last.outputs.get("Y", "")])
    candidates = {
        position
        for value in finals | sequence
        for position in index.consumer_positions(value)
        if index.nodes[position].op_type in ("Gemm", "MatMul")
        and index.nodes[position].input[0] == value
    }
    for node in (index.nodes[p] for p in sorted(candidates)):
        try:
            W = values.get(node.input[1], f"the weight of {node.op_type} node {node.name!r}")
        except Refused:  # too large, or corrupt: never passed over
            raise
        except NotSupported:
            continue
        transposed = attributes(node).get("transB", 0) == 1
        W = W if transposed else W.T
        if W.ndim != 2 or W.shape[1] != width:
            continue
        if (
            node.input[0] not in finals
            and spec.bidirectional
            and not reads_final_states(model, values.given, node.input[0], last)
        ):
            raise NotSupported(
                f"{node.op_type} node {node.name!r} reads the last step of a bidirectional "
                "layer's Y, which is not its final states: allowed a head on the final states"
            )
        has_bias = len(node.input) > 2 and node.input[2]
        bias = values.get(node.input[2], "the head's bias") if has_bias else None
        out = node.output[0]
        if bias is None:  # MatMul + Add
            add = next((n for n in index.consumers(out) if n.op_type == "Add"), None)
            other = add and next((i for i in add.input if i != out), None)
            bias = values.get(other, "the head's bias") if other else np.zeros(W.shape[0])
            out = add.output[0] if add is not None else out
        consumers = index.consumers(out)
        for consumer in consumers:
            if consumer.op_type in HEAD_ACTIVATIONS:
                raise NotSupported(
                    f"the head is followed by {consumer.op_type}: allowed none or Softmax"
                )
        softmax = any(n.op_type == "Softmax" for n in consumers)
        return (
            {"head.W": W.astype(spec.dtype), "head.b": np.asarray(bias, spec.dtype)},
            Head(W.shape[0], "softmax" if softmax else "none"),
        )
    return None


def reads_final_states(model, given, head_input: str, last) -> bool:
    """Whether `head_input`, computed from a bidirectional node's Y, is its final states:
    the forward direction's last step beside the backward direction's first (tf2onnx writes
    Keras's Bidirectional so). Told by running the file once on a small random x; False when
    it cannot run or the values differ."""
    from harness.onnx.session import open_session, run_session

    y = last.outputs.get("Y")
    if not y:
        return False
    rng = np.random.default_rng(0)
    feed = {}
    stored = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in stored:
            continue
        if value.name in given:
            feed[value.name] = given[value.name]
            continue
        dims = [d if d is not None else 3 for d in declared_dims(value)]
        elem = value.type.tensor_type.elem_type
        if elem in (6, 7):  # int32, int64: sequence lengths, full
            feed[value.name] = np.full(dims, 3, dtype=np.int32 if elem == 6 else np.int64)
        else:
            dtype = np.float64 if elem == 11 else np.float32
            feed[value.name] = rng.standard_normal(dims).astype(dtype)
    try:
        session = open_session(model, extra_outputs=[head_input, y], what="the file")
        head, sequence = run_session(session, feed, "the file")[-2:]
    except Refused:
        raise
    except Exception:
        return False
    if last.layout == 1:  # [B, T, D, H] -> [T, D, B, H]
        sequence = sequence.transpose(1, 2, 0, 3)
    finals = np.concatenate([sequence[-1, 0], sequence[0, 1]], axis=-1)
    return head.shape == finals.shape and bool(np.allclose(head, finals, rtol=1e-5, atol=1e-6))
