"""Bring your own ONNX model, the reading half: a file whose recurrence is native RNN/LSTM/GRU
nodes becomes a spec and canonical weights (harness/onnx/file_check.py then checks the file, as
ONNX Runtime runs it, against the NumPy reference on those weights). Its declared input sizes
and the names of the other inputs each recurrent node reads (sequence_lens, initial states) are
kept for that check. Anything it cannot read is named: Loop/unrolled recurrences, layout=1,
peepholes, non-default activations, clip, input_forget, GRU with linear_before_reset=0, weights
computed at run time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights

CELLS = {"RNN": Cell.RNN, "LSTM": Cell.LSTM, "GRU": Cell.GRU}
DEFAULT_ACTIVATIONS = {
    "RNN": ["Tanh"],
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
}
DIRECTIONS = ("forward", "reverse", "bidirectional")


@dataclasses.dataclass
class ImportedModel:
    spec: ModelSpec  # a reverse-only model's spec reads forward: see `direction`
    weights: CanonicalWeights
    x_input: str
    batch_major: bool
    direction: str = "forward"  # of every layer: forward, reverse or bidirectional
    T: int | None = None  # the sequence length the file declares; None when dynamic
    B: int | None = None  # the batch size it declares; None when dynamic
    node_inputs: tuple = ()  # per layer: names of (sequence_lens, initial_h, initial_c), or ""


def _attrs(node) -> dict:
    from onnx import helper

    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for key, value in values.items():
        if isinstance(value, bytes):
            values[key] = value.decode()
        elif isinstance(value, list):
            values[key] = [v.decode() if isinstance(v, bytes) else v for v in value]
    return values


def constant_values(model) -> dict[str, np.ndarray]:
    """Every value stored in the file by name: initializers and Constant nodes' outputs."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def load_model(path):
    """The file as an onnx ModelProto, or NotSupported saying why it is not one."""
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise NotSupported(f"{path} is not a readable ONNX model: {exc}") from None


def read_onnx(path) -> ImportedModel:
    """The file's spec, canonical weights, sequence input and declared sizes, or NotSupported
    naming what it cannot read."""
    model = load_model(path)
    nodes = _recurrent_nodes(model, path)
    values = constant_values(model)
    layers = [_layer(node, values) for node in nodes]
    spec = _layers_spec(nodes[0].op_type, layers, path)
    arrays = {
        f"l{i}.{k}": layer[k] for i, layer in enumerate(layers) for k in ("W", "R", "Wb", "Rb")
    }
    head_arrays = _head(model, values, spec)
    if head_arrays:
        arrays.update(head_arrays[0])
        spec = spec.replace(head=head_arrays[1])
    x_input, batch_major = _x_input(model, nodes[0])
    spec = spec.replace(batch_first=batch_major)
    T, B = _declared_sizes(model, x_input, spec, path, nodes[-1])
    slots = tuple(tuple(n.input[i] if len(n.input) > i else "" for i in (4, 5, 6)) for n in nodes)
    weights = CanonicalWeights(spec, arrays)
    direction = layers[0]["direction"]
    return ImportedModel(spec, weights, x_input, batch_major, direction, T, B, slots)


def _layers_spec(op_type: str, layers: list[dict], path) -> ModelSpec:
    """The spec (no head yet) of a stack of layers that all run one direction."""
    directions = [layer["direction"] for layer in layers]
    if len(set(directions)) > 1:
        raise NotSupported(
            f"{path} has layers running {directions}: allowed one direction for every layer"
        )
    first = layers[0]
    return ModelSpec(
        CELLS[op_type],
        first["W"].shape[2],
        first["R"].shape[2],
        num_layers=len(layers),
        bidirectional=first["W"].shape[0] == 2,
        dtype=str(first["W"].dtype),
        head=None,
    )


def _recurrent_nodes(model, path) -> list:
    """The native recurrent nodes, one cell type, each layer reading the one before it."""
    nodes = [n for n in model.graph.node if n.op_type in CELLS]
    if not nodes:
        found = sorted({n.op_type for n in model.graph.node} & {"Loop", "Scan"})
        form = f"a {found[0]}" if found else "unrolled per-step nodes"
        raise NotSupported(
            f"{path} has no native RNN/LSTM/GRU node (its recurrence is {form}): "
            "allowed native recurrent nodes only"
        )
    if len({n.op_type for n in nodes}) > 1:
        raise NotSupported(f"{path} mixes {sorted({n.op_type for n in nodes})}: one cell type only")
    for k in range(1, len(nodes)):
        if nodes[k].input[0] not in _downstream(model, nodes[k - 1].output):
            raise NotSupported(
                f"{path}: recurrent node {k} does not read recurrent node {k - 1}'s output: "
                "allowed one stack of layers"
            )
    return nodes


def _downstream(model, names) -> set[str]:
    """`names` and every value computed from them."""
    reached = set(names)
    for node in model.graph.node:  # ONNX keeps nodes in topological order
        if reached.intersection(node.input):
            reached.update(node.output)
    return reached


def _layer(node, values) -> dict[str, np.ndarray]:
    """One recurrent node's W, R, Wb, Rb and direction, its attributes checked first."""
    where = f"{node.op_type} node {node.name or node.output[0]!r}"
    direction = _checked_direction(node, _attrs(node), where)
    W, R = (values.get(node.input[i]) for i in (1, 2))
    if W is None or R is None:
        raise NotSupported(f"{where}: W and R are computed at run time: allowed stored ones")
    GH = W.shape[1]
    B = values.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    B = np.zeros((W.shape[0], 2 * GH), W.dtype) if B is None else B
    return {"W": W, "R": R, "Wb": B[:, :GH].copy(), "Rb": B[:, GH:].copy(), "direction": direction}


def _checked_direction(node, a: dict, where: str) -> str:
    """The node's direction, once its attributes `a` and inputs ask for nothing this reader
    refuses (layout=1, other activations, clip, input_forget, GRU linear_before_reset=0,
    LSTM peepholes)."""
    if a.get("layout", 0) != 0:
        raise NotSupported(
            f"{where} has layout=1 (batch-major), which ONNX Runtime cannot run: allowed layout=0"
        )
    direction = a.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise NotSupported(f"{where} has direction {direction!r}: allowed {', '.join(DIRECTIONS)}")
    acts = a.get("activations", [])
    defaults = DEFAULT_ACTIVATIONS[node.op_type] * (2 if direction == "bidirectional" else 1)
    if acts and acts != defaults:
        raise NotSupported(f"{where} uses activations {acts}: allowed the defaults {defaults}")
    for name, allowed in (("clip", "no clip"), ("input_forget", "0")):
        if a.get(name):
            raise NotSupported(f"{where} sets {name}={a[name]}: allowed {allowed}")
    if node.op_type == "GRU" and a.get("linear_before_reset", 0) != 1:
        raise NotSupported(
            f"{where} has linear_before_reset=0: allowed 1, the canonical GRU (PyTorch, "
            "Keras reset_after=True, cuDNN)"
        )
    if node.op_type == "LSTM" and len(node.input) > 7 and node.input[7]:
        raise NotSupported(f"{where} has peepholes (input P): allowed none")
    return direction


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
    Transpose with perm [1, 0, 2] (batch-major), or, with T = 1, a Reshape of [B, 1, I] to
    [1, B, I] (tf2onnx writes that Transpose so)."""
    inputs = {i.name: i for i in model.graph.input}
    source = first_node.input[0]
    if source in inputs:
        return source, False
    producer = next((n for n in model.graph.node if source in n.output), None)
    x = producer.input[0] if producer is not None and producer.input else None
    perm = list(_attrs(producer).get("perm", [])) if x in inputs else []
    if producer is not None and producer.op_type == "Transpose" and perm == [1, 0, 2]:
        return x, True
    if x in inputs and producer.op_type == "Reshape":
        dims = _dims(inputs[x])
        if len(dims) == 3 and 1 in dims[:2]:
            return x, dims[1] == 1
    raise NotSupported(
        "cannot tell which graph input is the sequence: the first recurrent node reads neither "
        "a graph input nor a [1, 0, 2] Transpose of one: allowed those"
    )


def _dims(value) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def _declared_sizes(model, x_input, spec, path, last) -> tuple[int | None, int | None]:
    """(T, B) as x declares them, None where dynamic. A T that x leaves dynamic but an output
    computed from the last node's Y fixes counts as static (torch's dynamo exporter was seen to
    reshape y to its example's T)."""
    x = next(v for v in model.graph.input if v.name == x_input)
    dims = _dims(x)
    if len(dims) != 3 or dims[2] not in (None, spec.input_size):
        raise NotSupported(
            f"{path}: input {x_input!r} has shape {dims}: allowed [T, B, I] or [B, T, I] "
            f"with I = {spec.input_size}, as its first recurrent node's W says"
        )
    t_axis = 1 if spec.batch_first else 0
    T, B = dims[t_axis], dims[1 - t_axis]
    width = spec.num_directions * spec.hidden_size
    from_y = _downstream(model, last.output[:1]) if T is None else set()
    for out in (o for o in model.graph.output if o.name in from_y):
        out_dims = _dims(out)
        if len(out_dims) == 3 and out_dims[2] == width and out_dims[t_axis]:
            T = out_dims[t_axis]
    return T, B
