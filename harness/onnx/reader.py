"""Bring your own ONNX model, the reading half: a file whose recurrence is native RNN/LSTM/GRU
nodes becomes a spec and canonical weights, in every form the ONNX operator allows:

- weights (W, R, B, and an LSTM's peepholes P) stored as initializers or Constant nodes, given
  as graph inputs whose values come with the file (`given`: --inputs), or computed from those
  by a constant subgraph (a dynamo export's Slice/Concat), which is folded here, and said so;
- GRU linear_before_reset 0 and 1, LSTM peepholes and input_forget, clip (ModelSpec variants);
- layout 0 and 1, stacked nodes, one direction for every layer (forward, reverse or both);
- sequence_lens and initial states as graph inputs or computed values (their names are kept
  for the check, which feeds or probes them);
- a dense head (Gemm, or MatMul + Add, optionally Softmax) on the last node's final states.

What it cannot read is refused in one line naming it: Loop/Scan or unrolled recurrences (check
those against their source with `--against`), non-default activations, nodes that disagree.
harness/model_file/check.py then runs the file and compares it with the NumPy reference.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TypedDict

import numpy as np

from harness.files import limits
from harness.model.front_end import PLAIN, FrontEnd
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, ModelSpec, SpecError
from harness.model.weights import CanonicalWeights, WeightsError
from harness.onnx import embedding, external, sizes
from harness.onnx.graph import GraphIndex, attributes, declared_dims
from harness.onnx.head import read_head
from harness.onnx.values import Values, constant_values, graph_input_names

__all__ = ["constant_values", "declared_dims", "graph_input_names", "load_model", "read_onnx"]

CELLS = {"RNN": Cell.RNN, "LSTM": Cell.LSTM, "GRU": Cell.GRU}
DEFAULT_ACTIVATIONS = {
    "RNN": ["Tanh"],
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
}
DIRECTIONS = ("forward", "reverse", "bidirectional")
SLOTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
PASS_THROUGH = ("Identity", "Cast")  # ops between x and the first node that keep its values


@dataclasses.dataclass(frozen=True)
class RecurrentNode:
    """One native recurrent node as the file holds it."""

    op_type: str
    label: str  # for messages: "LSTM node 'lstm0'"
    direction: str
    layout: int  # 0: X [T, B, I], states [D, B, H]; 1: X [B, T, I], states [B, D, H]
    inputs: dict[str, str]  # slot (SLOTS) -> value name, present slots only
    outputs: dict[str, str]  # "Y", "Y_h", "Y_c" -> value name, present outputs only
    attributes: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ImportedModel:
    spec: ModelSpec  # a reverse-only model's spec reads forward: see `direction`
    weights: CanonicalWeights
    x_input: str
    batch_major: bool
    direction: str = "forward"  # of every layer: forward, reverse or bidirectional
    T: int | None = None  # the sequence length x declares; None when dynamic
    B: int | None = None  # the batch size it declares; None when dynamic
    nodes: tuple[RecurrentNode, ...] = ()
    weight_inputs: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()  # how the weights were found, where it is not plain
    output_T: int | None = None  # a static T an output declares while x leaves T dynamic
    front: FrontEnd = PLAIN  # an embedding before the first node: x_input holds tokens

    @property
    def node_inputs(self) -> tuple[tuple[str, str, str], ...]:
        """Per layer: names of (sequence_lens, initial_h, initial_c), "" where absent."""
        get = lambda n, slot: n.inputs.get(slot, "")  # noqa: E731
        return tuple(
            (get(n, "sequence_lens"), get(n, "initial_h"), get(n, "initial_c")) for n in self.nodes
        )

    @property
    def layout(self) -> int:
        return self.nodes[0].layout if self.nodes else 0


def load_model(path):
    """The file as an onnx ModelProto, or NotSupported saying why it is not one; Refused
    (before anything of that size is allocated) where it is larger than the memory budget,
    declares a tensor or a graph input that is, keeps data outside the file or is corrupt
    (harness/onnx/sizes.py)."""
    import onnx

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise NotSupported(f"{path} is not a readable ONNX model: {exc}") from None
    limits.require(size, f"{path} (the file, read whole)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise NotSupported(f"{path} is not a readable ONNX model: {exc}") from None
    external.inline_sidecars(model, path)
    sizes.check_stored(model, str(path))
    sizes.check_io(model, str(path))
    return model


def read_onnx(path, given: dict[str, np.ndarray] | None = None) -> ImportedModel:
    """The file's spec, canonical weights, sequence input and declared sizes, or NotSupported
    naming what it cannot read. `given`: values of graph inputs (the weights among them)."""
    model = load_model(path)
    given = dict(given or {})
    index = GraphIndex(model.graph)
    nodes = _recurrent_nodes(model, index, path)
    values = Values(model, index, given, path)
    layers = [_layer(node, values) for node in nodes]
    spec = _layers_spec(nodes, layers, path)
    arrays = {f"l{i}.{k}": v for i, layer in enumerate(layers) for k, v in layer.items()}
    head_arrays = read_head(model, index, values, spec, nodes[-1])
    if head_arrays:
        arrays.update(head_arrays[0])
        spec = spec.replace(head=head_arrays[1])
    x_input, batch_major, lookup = _x_input(model, index, nodes[0], set(values.tensors))
    spec = spec.replace(batch_first=batch_major)
    front = PLAIN
    if lookup:
        table = embedding.table_of(values, lookup)
        if table.shape[1] != spec.input_size:
            raise NotSupported(
                f"{path}: the embedding table {lookup.table!r} has rows of {table.shape[1]}, "
                f"the first recurrent node takes I = {spec.input_size}"
            )
        front = FrontEnd(table, layers=(lookup.table,))
    T, B, output_T = _declared_sizes(model, index, x_input, spec, path, nodes[-1], front)
    try:
        weights = CanonicalWeights(spec, arrays)
    except WeightsError as exc:
        raise NotSupported(f"{path}: its recurrent nodes' weights disagree: {exc}") from None
    return ImportedModel(
        spec,
        weights,
        x_input,
        batch_major,
        nodes[0].direction,
        T,
        B,
        tuple(nodes),
        values.weight_inputs,
        tuple(values.notes),
        output_T,
        front,
    )


def folded_values(model) -> dict[str, np.ndarray]:
    """Every value of the main graph computable from its stored values alone (a constant
    subgraph: Transpose, Slice, Concat of initializers), folded as read_onnx folds a weight:
    each size bounded before anything runs; a value that cannot be folded is left out."""
    values = Values(model, GraphIndex(model.graph), {}, "the file")
    known, out = set(values.tensors), {}
    for node in model.graph.node:
        if node.op_type in ("Constant", "Loop", "If", "Scan", *CELLS):
            continue
        if all(not name or name in known for name in node.input):
            known.update(name for name in node.output if name)
            for name in (n for n in node.output if n):
                try:
                    out[name] = values.get(name, f"value {name!r}")
                except limits.Refused:
                    raise
                except NotSupported:
                    continue
    return out


def _recurrent_nodes(model, index: GraphIndex, path) -> list[RecurrentNode]:
    """The native recurrent nodes, one cell type, each layer reading the one before it."""
    positions = index.positions_of(*CELLS)
    found = [index.nodes[p] for p in positions]
    if not found:
        loops = sorted({n.op_type for n in index.nodes} & {"Loop", "Scan"})
        form = (
            f"its recurrence is a {loops[0]}"
            if loops
            else "nor a Loop or Scan: a recurrence, if it holds one, is unrolled into nodes"
        )
        raise NotSupported(
            f"{path} has no native RNN/LSTM/GRU node ({form}): allowed native "
            "recurrent nodes; check such an export against its source model with "
            "`rnnbench parity --model SOURCE --against EXPORT`"
        )
    if len({n.op_type for n in found}) > 1:
        raise NotSupported(f"{path} mixes {sorted({n.op_type for n in found})}: one cell type only")
    latest = index.latest_ancestor(positions)  # a layer reads the one before it: one pass
    for k in range(1, len(found)):
        if latest.get(found[k].input[0] if found[k].input else "") != positions[k - 1]:
            raise NotSupported(
                f"{path}: recurrent node {k} does not read recurrent node {k - 1}'s output: "
                "allowed one stack of layers"
            )
    return [_node(n, k) for k, n in enumerate(found)]


def _node(node, k: int) -> RecurrentNode:
    label = f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node {k}"
    a = attributes(node)
    direction = a.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise NotSupported(f"{label} has direction {direction!r}: allowed {', '.join(DIRECTIONS)}")
    acts = a.get("activations", [])
    defaults = DEFAULT_ACTIVATIONS[node.op_type] * (2 if direction == "bidirectional" else 1)
    if acts and [x.lower() for x in acts] != [x.lower() for x in defaults]:
        raise NotSupported(
            f"{label} sets activations={acts}: allowed the defaults {defaults} "
            "(the reference and every backend compute those only)"
        )
    layout = a.get("layout", 0)
    if layout not in (0, 1):
        raise NotSupported(f"{label} has layout={layout}: allowed 0 or 1")
    inputs = {slot: name for slot, name in zip(SLOTS, node.input, strict=False) if name}
    outputs = {k: n for k, n in zip(("Y", "Y_h", "Y_c"), node.output, strict=False) if n}
    return RecurrentNode(node.op_type, label, direction, layout, inputs, outputs, a)


def _layer(node: RecurrentNode, values: Values) -> dict[str, np.ndarray]:
    """One recurrent node's W, R, Wb, Rb (and P), checked against its hidden_size."""
    what = lambda slot: f"{slot} of {node.label}"  # noqa: E731
    W, R = (np.asarray(values.get(node.inputs[s], what(s))) for s in ("W", "R"))
    if W.ndim != 3 or R.ndim != 3 or W.shape[:2] != R.shape[:2] or R.shape[1] % R.shape[2]:
        given = [s for s in ("W", "R") if node.inputs[s] in values.given]
        source = f" ({' and '.join(given)} from --inputs)" if given else ""
        raise NotSupported(
            f"{node.label}: W {list(W.shape)} and R {list(R.shape)} do not fit{source}: "
            "allowed W [D, G*H, I] and R [D, G*H, H] of one D and G*H"
        )
    D, GH, H = R.shape
    G, directions = CELLS[node.op_type].gates, 2 if node.direction == "bidirectional" else 1
    if GH != G * H or directions != D:
        raise NotSupported(
            f"{node.label}: R has shape {list(R.shape)}: a {node.op_type} with direction "
            f"{node.direction} needs [{directions}, {G}*H, H]"
        )
    B = values.get(node.inputs["B"], what("B")) if "B" in node.inputs else None
    B = np.zeros((D, 2 * GH), W.dtype) if B is None else np.asarray(B, W.dtype)
    if B.shape != (D, 2 * GH):
        raise NotSupported(f"{node.label}: B has shape {list(B.shape)}: allowed [{D}, {2 * GH}]")
    out = {"W": W, "R": R, "Wb": B[:, :GH].copy(), "Rb": B[:, GH:].copy()}
    if "P" in node.inputs:
        P = np.asarray(values.get(node.inputs["P"], what("P")), W.dtype)
        if P.shape != (D, 3 * H):
            raise NotSupported(f"{node.label}: P has shape {list(P.shape)}: allowed [{D}, {3 * H}]")
        out["P"] = P
    return out


class Variants(TypedDict, total=False):
    """A node's ModelSpec variant fields."""

    linear_before_reset: bool
    input_forget: bool
    peepholes: bool
    clip: float


def _variants(node: RecurrentNode, a: dict) -> Variants:
    """The node's ModelSpec variant fields."""
    out: Variants = {}
    if node.op_type == "GRU":
        out["linear_before_reset"] = bool(a.get("linear_before_reset", 0))
    if node.op_type == "LSTM":
        out["input_forget"] = bool(a.get("input_forget", 0))
        out["peepholes"] = "P" in node.inputs
    if a.get("clip") is not None:
        out["clip"] = float(a["clip"])
    return out


def _layers_spec(nodes: list[RecurrentNode], layers: list[dict], path) -> ModelSpec:
    """The spec (no head yet) of a stack of layers that all run one direction and variant."""
    attrs = [n.attributes for n in nodes]
    for node, a, layer in zip(nodes, attrs, layers, strict=True):
        declared = a.get("hidden_size")
        if declared is not None and declared != layer["R"].shape[2]:
            raise NotSupported(
                f"{path}: {node.label} declares hidden_size={declared} but its R has H="
                f"{layer['R'].shape[2]}: the file contradicts itself (ONNX Runtime refuses it)"
            )
    for field, values in (
        ("direction", [n.direction for n in nodes]),
        ("layout", [n.layout for n in nodes]),
        ("variants", [_variants(n, a) for n, a in zip(nodes, attrs, strict=True)]),
    ):
        if any(v != values[0] for v in values):
            raise NotSupported(
                f"{path} has layers whose {field} differ ({values}): allowed one for every layer"
            )
    first = layers[0]
    try:
        return ModelSpec(
            CELLS[nodes[0].op_type],
            first["W"].shape[2],
            first["R"].shape[2],
            num_layers=len(layers),
            bidirectional=first["W"].shape[0] == 2,
            dtype=str(first["W"].dtype),
            head=None,
            **_variants(nodes[0], attrs[0]),
        )
    except SpecError as exc:
        raise NotSupported(f"{path}: {exc}") from None


def _x_input(model, index: GraphIndex, first: RecurrentNode, stored: set[str]):
    """(the graph input that feeds the first recurrent node, batch-major?, the embedding it
    goes through or None): directly (batch-major when the node has layout=1), through a
    Transpose with perm [1, 0, 2] (batch-major), or, with T = 1, a Reshape of [B, 1, I] to
    [1, B, I] (tf2onnx writes that Transpose so); Identity and Cast nodes on the way keep the
    values and are walked through; integer tokens looked up in a stored table (a Gather,
    harness/onnx/embedding.py) are the input of a model with an embedding."""
    inputs = {i.name: i for i in model.graph.input}
    source, producer = index.through(first.inputs["X"], PASS_THROUGH)
    if source in inputs:
        return source, first.layout == 1, None
    found = producer is not None and embedding.find(model, index, producer, stored)
    if found:
        return found.tokens, (first.layout == 1) != found.swapped, found
    x = None
    if producer is not None and producer.input:
        x, _ = index.through(producer.input[0], PASS_THROUGH)
    transposed = producer is not None and producer.op_type == "Transpose"
    if transposed and list(attributes(producer).get("perm", [])) == [1, 0, 2]:
        gather = index.through(producer.input[0], PASS_THROUGH)[1]
        found = gather is not None and embedding.find(model, index, gather, stored)
        if found:
            return found.tokens, (first.layout == 0) != found.swapped, found
    perm = list(attributes(producer).get("perm", [])) if x in inputs else []
    if producer is not None and producer.op_type == "Transpose" and perm == [1, 0, 2]:
        return x, first.layout == 0, None
    if x in inputs and producer.op_type == "Reshape":
        dims = declared_dims(inputs[x])
        if len(dims) == 3 and 1 in dims[:2]:
            return x, dims[1] == 1, None
    blocking = producer
    if producer is not None and producer.op_type in ("Transpose", "Reshape") and x is not None:
        blocking = index.through(x, PASS_THROUGH)[1] or producer  # what feeds the Transpose
    what = f"a {blocking.op_type} node" if blocking is not None else f"{source!r}"
    raise NotSupported(
        f"cannot tell which graph input is the sequence: the first recurrent node's X comes "
        f"from {what}: allowed a graph input, directly, through Identity or Cast, or a "
        "[1, 0, 2] Transpose of one (check another export against its source: --against)"
    )


def _declared_sizes(model, index: GraphIndex, x_input, spec, path, last: RecurrentNode, front):
    """(T, B) as x declares them, None where dynamic, and a T that an output computed from the
    last node's Y declares while x leaves it dynamic (a hint of a length baked into the graph:
    torch's dynamo exporter was seen to reshape y to its example's T)."""
    x = next(v for v in model.graph.input if v.name == x_input)
    dims = declared_dims(x)
    if front.tokens and len(dims) == 2:  # tokens [T, B] or [B, T]
        dims = [*dims, spec.input_size]
    if len(dims) != 3 or dims[2] not in (None, spec.input_size):
        raise NotSupported(
            f"{path}: input {x_input!r} has shape {dims}: allowed [T, B, I] or [B, T, I] "
            f"with I = {spec.input_size}, as its first recurrent node's W says"
        )
    t_axis = 1 if spec.batch_first else 0
    T, B = dims[t_axis], dims[1 - t_axis]
    output_T = None
    if T is None:
        width = spec.num_directions * spec.hidden_size
        from_y = index.downstream([last.outputs.get("Y", "")])
        for out in (o for o in model.graph.output if o.name in from_y):
            out_dims = declared_dims(out)
            if len(out_dims) == 3 and out_dims[2] == width and out_dims[t_axis]:
                output_T = out_dims[t_axis]
    return T, B, output_T
