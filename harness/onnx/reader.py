"""Bring your own ONNX model: read a file whose recurrence is native RNN/LSTM/GRU nodes into a
spec and canonical weights, then check the file, as ONNX Runtime runs it, against the NumPy
reference on those weights. Anything it cannot read is named: Loop/unrolled recurrences,
layout=1, peepholes, non-default activations, clip, a reverse-only direction, GRU with
linear_before_reset=0, weights that are computed rather than stored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights
from harness.parity.checks import Comparison, compare

CELLS = {"RNN": Cell.RNN, "LSTM": Cell.LSTM, "GRU": Cell.GRU}
DEFAULT_ACTIVATIONS = {
    "RNN": ["Tanh"],
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
}


@dataclasses.dataclass
class ImportedModel:
    spec: ModelSpec
    weights: CanonicalWeights
    x_input: str
    batch_major: bool


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def read_onnx(path) -> ImportedModel:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise NotSupported(f"{path} is not a readable ONNX model: {exc}") from None
    nodes = [n for n in model.graph.node if n.op_type in CELLS]
    if not nodes:
        found = sorted({n.op_type for n in model.graph.node} & {"Loop", "Scan"})
        form = f"a {found[0]}" if found else "unrolled per-step nodes"
        raise NotSupported(
            f"{path} has no native RNN/LSTM/GRU node (its recurrence is {form}): "
            "only native recurrent nodes can be read"
        )
    if len({n.op_type for n in nodes}) > 1:
        raise NotSupported(f"{path} mixes {sorted({n.op_type for n in nodes})}: one cell type only")
    values = _constants(model)
    layers = [_layer(node, values) for node in nodes]
    first = layers[0]
    spec = ModelSpec(
        CELLS[nodes[0].op_type],
        first["W"].shape[2],
        first["R"].shape[2],
        num_layers=len(layers),
        bidirectional=first["W"].shape[0] == 2,
        dtype=str(first["W"].dtype),
        head=None,
    )
    arrays = {
        f"l{i}.{k}": layer[k] for i, layer in enumerate(layers) for k in ("W", "R", "Wb", "Rb")
    }
    head_arrays = _head(model, values, spec)
    if head_arrays:
        arrays.update(head_arrays[0])
        spec = spec.replace(head=head_arrays[1])
    x_input, batch_major = _x_input(model, nodes[0])
    return ImportedModel(
        spec.replace(batch_first=batch_major),
        CanonicalWeights(spec.replace(batch_first=batch_major), arrays),
        x_input,
        batch_major,
    )


def _layer(node, values) -> dict[str, np.ndarray]:
    a = _attrs(node)
    where = f"{node.op_type} node {node.name or node.output[0]!r}"
    if a.get("layout", 0) != 0:
        raise NotSupported(
            f"{where} has layout=1 (batch-major): not supported, and ONNX Runtime rejects it too"
        )
    if a.get("direction", b"forward") in (b"reverse", "reverse"):
        raise NotSupported(f"{where} runs in reverse only: allowed forward, bidirectional")
    acts = [x.decode() if isinstance(x, bytes) else x for x in a.get("activations", [])]
    D = 2 if a.get("direction") in (b"bidirectional", "bidirectional") else 1
    if acts and acts != DEFAULT_ACTIVATIONS[node.op_type] * D:
        raise NotSupported(f"{where} uses activations {acts}: only the defaults are supported")
    for name in ("clip", "input_forget"):
        if a.get(name):
            raise NotSupported(f"{where} sets {name}: not supported")
    if node.op_type == "GRU" and a.get("linear_before_reset", 0) != 1:
        raise NotSupported(
            f"{where} has linear_before_reset=0: the canonical GRU (PyTorch, "
            "Keras reset_after=True, cuDNN) is the linear_before_reset=1 form"
        )
    if node.op_type == "LSTM" and len(node.input) > 7 and node.input[7]:
        raise NotSupported(f"{where} has peepholes (input P): not supported")
    W, R = (values.get(node.input[i]) for i in (1, 2))
    if W is None or R is None:
        raise NotSupported(f"{where}: W and R must be stored initializers or constants")
    GH = W.shape[1]
    B = values.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    B = np.zeros((W.shape[0], 2 * GH), W.dtype) if B is None else B
    return {"W": W, "R": R, "Wb": B[:, :GH].copy(), "Rb": B[:, GH:].copy()}


def _head(model, values, spec):
    """A Gemm (or MatMul + Add) reading the final states, and an optional Softmax after it."""
    width = spec.num_directions * spec.hidden_size
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "MatMul") or node.input[1] not in values:
            continue
        W = values[node.input[1]]
        transposed = _attrs(node).get("transB", 0) == 1
        W = W if transposed else W.T
        if W.ndim != 2 or W.shape[1] != width:
            continue
        bias = values.get(node.input[2]) if len(node.input) > 2 else None
        out = node.output[0]
        if bias is None:  # MatMul + Add
            add = next((n for n in model.graph.node if n.op_type == "Add" and out in n.input), None)
            other = add and next((i for i in add.input if i != out), None)
            bias = values.get(other) if other else np.zeros(W.shape[0], W.dtype)
            out = add.output[0] if add is not None else out
        softmax = any(n.op_type == "Softmax" and out in n.input for n in model.graph.node)
        return (
            {"head.W": W.astype(spec.dtype), "head.b": np.asarray(bias, spec.dtype)},
            Head(W.shape[0], "softmax" if softmax else "none"),
        )
    return None


def _x_input(model, first_node) -> tuple[str, bool]:
    """The graph input that feeds the first recurrent node, directly (time-major) or through a
    Transpose with perm [1, 0, 2] (batch-major)."""
    graph_inputs = {i.name for i in model.graph.input}
    source = first_node.input[0]
    if source in graph_inputs:
        return source, False
    producer = next((n for n in model.graph.node if source in n.output), None)
    transposed = producer is not None and producer.op_type == "Transpose"
    if (
        transposed
        and list(_attrs(producer).get("perm", [])) == [1, 0, 2]
        and (producer.input[0] in graph_inputs)
    ):
        return producer.input[0], True
    raise NotSupported(
        "cannot tell which graph input is the sequence: the first recurrent node "
        "reads neither a graph input nor a [1, 0, 2] Transpose of one"
    )


def check_file(path, imported: ImportedModel, T=11, B=3, seed=0) -> list[Comparison]:
    """Run the file in ONNX Runtime on random x (other graph inputs at zero) and compare each
    output with the reference tensor of the same shape it is closest to."""
    import onnx
    import onnxruntime as ort

    from backends import numpy_ref
    from harness.onnx.audit import static_time_steps

    spec = imported.spec
    T = static_time_steps(onnx.load(str(path))) or T  # a file with a baked-in T runs at it
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(
        (B, T, spec.input_size) if imported.batch_major else (T, B, spec.input_size)
    ).astype(spec.dtype)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {}
    for value in session.get_inputs():
        if value.name == imported.x_input:
            feed[value.name] = x
        elif "int" in value.type:  # sequence_lens: every sample full length
            feed[value.name] = np.full(B, T, np.int32)
        else:
            shape = [d if isinstance(d, int) else B for d in value.shape]
            feed[value.name] = np.zeros(shape, spec.dtype)
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True)
    )
    spec64 = spec.replace(dtype="float64")
    ref = numpy_ref.forward(spec64, dict(imported.weights.astype("float64")), x.astype(np.float64))
    candidates = {k: v for k, v in ref.as_dict().items()}
    return [_best_match(name, value, candidates, spec.dtype) for name, value in outputs.items()]


def _best_match(name, value, candidates, dtype) -> Comparison:
    same_shape = [(k, v) for k, v in candidates.items() if v.shape == value.shape]
    if not same_shape:
        known = ", ".join(f"{k} {v.shape}" for k, v in candidates.items())
        message = f"file:{name}: shape {value.shape} matches no reference output ({known})"
        return Comparison(f"file:{name}", False, float("nan"), float("nan"), 0, 0, message)
    results = [compare(f"file:{name}~{k}", v, value, dtype) for k, v in same_shape]
    return min(results, key=lambda r: (not r.passed, r.max_abs))
