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

import numpy as np

from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec, SpecError
from harness.model.weights import CanonicalWeights, WeightsError

CELLS = {"RNN": Cell.RNN, "LSTM": Cell.LSTM, "GRU": Cell.GRU}
DEFAULT_ACTIVATIONS = {
    "RNN": ["Tanh"],
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
}
DIRECTIONS = ("forward", "reverse", "bidirectional")
SLOTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
INPUTS_HINT = "an ONNX test-data folder of input_*.pb, or an .npz keyed by graph input name"
PASS_THROUGH = ("Identity", "Cast")  # ops between x and the first node that keep its values
HEAD_ACTIVATIONS = ("Sigmoid", "LogSoftmax", "Relu", "Tanh", "HardSigmoid", "Softplus")


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

    @property
    def node_inputs(self) -> tuple[tuple[str, str, str], ...]:
        """Per layer: names of (sequence_lens, initial_h, initial_c), "" where absent."""
        slots = ("sequence_lens", "initial_h", "initial_c")
        return tuple(tuple(n.inputs.get(s, "") for s in slots) for n in self.nodes)

    @property
    def layout(self) -> int:
        return self.nodes[0].layout if self.nodes else 0


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
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def load_model(path):
    """The file as an onnx ModelProto, or NotSupported saying why it is not one."""
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise NotSupported(f"{path} is not a readable ONNX model: {exc}") from None


def graph_input_names(model) -> list[str]:
    """The graph's inputs that are not also initializers (those are defaults, not inputs)."""
    stored = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in stored]


def read_onnx(path, given: dict[str, np.ndarray] | None = None) -> ImportedModel:
    """The file's spec, canonical weights, sequence input and declared sizes, or NotSupported
    naming what it cannot read. `given`: values of graph inputs (the weights among them)."""
    model = load_model(path)
    given = dict(given or {})
    nodes = _recurrent_nodes(model, path)
    values = _Values(model, given, path)
    layers = [_layer(node, values) for node in nodes]
    spec = _layers_spec(nodes, layers, path)
    arrays = {f"l{i}.{k}": v for i, layer in enumerate(layers) for k, v in layer.items()}
    head_arrays = _head(model, values, spec, nodes[-1])
    if head_arrays:
        arrays.update(head_arrays[0])
        spec = spec.replace(head=head_arrays[1])
    x_input, batch_major = _x_input(model, nodes[0])
    spec = spec.replace(batch_first=batch_major)
    T, B, output_T = _declared_sizes(model, x_input, spec, path, nodes[-1])
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
    )


def folded_values(model) -> dict[str, np.ndarray]:
    """Every value of the main graph computable from its stored values alone (a constant
    subgraph: Transpose, Slice, Concat of initializers), evaluated as read_onnx folds them."""
    return _Values(model, {}, "the file")._fold()


class _Values:
    """A node input's value: stored in the file, given for a graph input, or folded from a
    constant subgraph; refused, naming where it comes from, when it is none of these."""

    def __init__(self, model, given: dict[str, np.ndarray], path):
        self.model, self.path, self.given = model, path, given
        self.stored = constant_values(model)
        self.inputs = set(graph_input_names(model))
        unknown = sorted(set(given) - {i.name for i in model.graph.input})
        if unknown:
            raise NotSupported(
                f"--inputs names {unknown[0]!r}, which is not an input of {path}: allowed "
                f"{', '.join(graph_input_names(model))}"
            )
        self.weight_inputs: dict[str, np.ndarray] = {}
        self.notes: list[str] = []
        self._folded: dict[str, np.ndarray] | None = None

    def get(self, name: str, what: str) -> np.ndarray:
        if name in self.given:  # a graph input's value, or one that overrides its default
            self.weight_inputs[name] = self.given[name]
            self._note(f"{what} given as graph input {name!r}")
            return np.asarray(self.given[name])
        if name in self.stored:
            return self.stored[name]
        if name in self.inputs:
            raise NotSupported(
                f"{what} is graph input {name!r}, whose value is not given: pass --inputs "
                f"({INPUTS_HINT})"
            )
        folded = self._fold().get(name)
        if folded is None:
            sources = sorted(self._graph_inputs_upstream(name))
            where = f"graph input {sources[0]!r}" if sources else "values the file does not hold"
            raise NotSupported(
                f"{what} is computed at run time from {where}: allowed stored weights, given "
                f"graph inputs (--inputs, {INPUTS_HINT}) or constant subgraphs"
            )
        ops = sorted({n.op_type for n in self._producers(name)})
        self._note(f"{what} folded from a constant subgraph ({', '.join(ops)})")
        return folded

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _fold(self) -> dict[str, np.ndarray]:
        """Every value computable from stored and given values alone, evaluated once by
        onnx's reference evaluator."""
        if self._folded is not None:
            return self._folded
        import onnx
        from onnx import helper, numpy_helper
        from onnx.reference import ReferenceEvaluator

        known = set(self.stored) | set(self.given)
        nodes = []
        for node in self.model.graph.node:
            if node.op_type == "Constant" or node.op_type in CELLS:
                continue
            if all(not i or i in known for i in node.input) and node.op_type not in ("Loop", "If"):
                nodes.append(node)
                known.update(o for o in node.output if o)
        self._folded = {}
        if not nodes:
            return self._folded
        wanted = [o for n in nodes for o in n.output if o]
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.stored.items()]
        inits += [numpy_helper.from_array(np.asarray(v), k) for k, v in self.given.items()]
        graph = helper.make_graph(
            nodes, "fold", [], [onnx.ValueInfoProto(name=n) for n in wanted], inits
        )
        folded = helper.make_model(graph, opset_imports=self.model.opset_import)
        try:
            results = ReferenceEvaluator(folded).run(None, {})
        except Exception:  # an op the evaluator lacks: nothing folds, the refusal says why
            return self._folded
        self._folded = {n: np.asarray(v) for n, v in zip(wanted, results, strict=True)}
        return self._folded

    def _producers(self, name: str) -> list:
        """The nodes `name` is computed by, transitively."""
        by_output = {o: n for n in self.model.graph.node for o in n.output}
        todo, seen = [name], []
        while todo:
            node = by_output.get(todo.pop())
            if node is not None and node not in seen:
                seen.append(node)
                todo += list(node.input)
        return seen

    def _graph_inputs_upstream(self, name: str) -> set[str]:
        names = {i for n in self._producers(name) for i in n.input}
        return names & self.inputs


def _recurrent_nodes(model, path) -> list[RecurrentNode]:
    """The native recurrent nodes, one cell type, each layer reading the one before it."""
    found = [n for n in model.graph.node if n.op_type in CELLS]
    if not found:
        loops = sorted({n.op_type for n in model.graph.node} & {"Loop", "Scan"})
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
    for k in range(1, len(found)):
        if found[k].input[0] not in _downstream(model, found[k - 1].output):
            raise NotSupported(
                f"{path}: recurrent node {k} does not read recurrent node {k - 1}'s output: "
                "allowed one stack of layers"
            )
    return [_node(n, k) for k, n in enumerate(found)]


def _node(node, k: int) -> RecurrentNode:
    label = f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node {k}"
    a = _attrs(node)
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


def _downstream(model, names) -> set[str]:
    """`names` and every value computed from them."""
    reached = {n for n in names if n}
    for node in model.graph.node:  # ONNX keeps nodes in topological order
        if reached.intersection(node.input):
            reached.update(node.output)
    return reached


def _layer(node: RecurrentNode, values: _Values) -> dict[str, np.ndarray]:
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


def _variants(node: RecurrentNode, a: dict) -> dict:
    """The node's ModelSpec variant fields."""
    out = {}
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


def _head(model, values: _Values, spec: ModelSpec, last: RecurrentNode):
    """A Gemm (or MatMul + Add) reading the last node's final states (or, one direction only,
    its last step), and an optional Softmax after it."""
    width = spec.num_directions * spec.hidden_size
    finals = _downstream(model, [last.outputs.get("Y_h", "")])
    sequence = _downstream(model, [last.outputs.get("Y", "")])
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "MatMul") or node.input[0] not in finals | sequence:
            continue
        try:
            W = values.get(node.input[1], f"the weight of {node.op_type} node {node.name!r}")
        except NotSupported:
            continue
        transposed = _attrs(node).get("transB", 0) == 1
        W = W if transposed else W.T
        if W.ndim != 2 or W.shape[1] != width:
            continue
        if (
            node.input[0] not in finals
            and spec.bidirectional
            and not _reads_final_states(model, values.given, node.input[0], last)
        ):
            raise NotSupported(
                f"{node.op_type} node {node.name!r} reads the last step of a bidirectional "
                "layer's Y, which is not its final states: allowed a head on the final states"
            )
        has_bias = len(node.input) > 2 and node.input[2]
        bias = values.get(node.input[2], "the head's bias") if has_bias else None
        out = node.output[0]
        if bias is None:  # MatMul + Add
            add = next((n for n in model.graph.node if n.op_type == "Add" and out in n.input), None)
            other = add and next((i for i in add.input if i != out), None)
            bias = values.get(other, "the head's bias") if other else np.zeros(W.shape[0])
            out = add.output[0] if add is not None else out
        consumers = [n for n in model.graph.node if out in n.input]
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


def _reads_final_states(model, given, head_input: str, last: RecurrentNode) -> bool:
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
    except Exception:
        return False
    if last.layout == 1:  # [B, T, D, H] -> [T, D, B, H]
        sequence = sequence.transpose(1, 2, 0, 3)
    finals = np.concatenate([sequence[-1, 0], sequence[0, 1]], axis=-1)
    return head.shape == finals.shape and bool(np.allclose(head, finals, rtol=1e-5, atol=1e-6))


def _x_input(model, first: RecurrentNode) -> tuple[str, bool]:
    """The graph input that feeds the first recurrent node: directly (batch-major when the node
    has layout=1), through a Transpose with perm [1, 0, 2] (batch-major), or, with T = 1, a
    Reshape of [B, 1, I] to [1, B, I] (tf2onnx writes that Transpose so); Identity and Cast
    nodes on the way keep the values and are walked through."""
    inputs = {i.name: i for i in model.graph.input}
    source, producer = _through_pass_through(model, first.inputs["X"])
    if source in inputs:
        return source, first.layout == 1
    x = None
    if producer is not None and producer.input:
        x, _ = _through_pass_through(model, producer.input[0])
    perm = list(_attrs(producer).get("perm", [])) if x in inputs else []
    if producer is not None and producer.op_type == "Transpose" and perm == [1, 0, 2]:
        return x, first.layout == 0
    if x in inputs and producer.op_type == "Reshape":
        dims = declared_dims(inputs[x])
        if len(dims) == 3 and 1 in dims[:2]:
            return x, dims[1] == 1
    blocking = producer
    if producer is not None and producer.op_type in ("Transpose", "Reshape") and x is not None:
        blocking = _through_pass_through(model, x)[1] or producer  # what feeds the Transpose
    what = f"a {blocking.op_type} node" if blocking is not None else f"{source!r}"
    raise NotSupported(
        f"cannot tell which graph input is the sequence: the first recurrent node's X comes "
        f"from {what}: allowed a graph input, directly, through Identity or Cast, or a "
        "[1, 0, 2] Transpose of one (check another export against its source: --against)"
    )


def _through_pass_through(model, name: str):
    """(the value `name` is a pass-through copy of, the node that produced that value)."""
    producer = next((n for n in model.graph.node if name in n.output), None)
    while producer is not None and producer.op_type in PASS_THROUGH and producer.input:
        name = producer.input[0]
        producer = next((n for n in model.graph.node if name in n.output), None)
    return name, producer


def declared_dims(value) -> list[int | None]:
    """Each axis of a graph value: its static size, or None where it is symbolic or unknown."""
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def _declared_sizes(model, x_input, spec, path, last: RecurrentNode):
    """(T, B) as x declares them, None where dynamic, and a T that an output computed from the
    last node's Y declares while x leaves it dynamic (a hint of a length baked into the graph:
    torch's dynamo exporter was seen to reshape y to its example's T)."""
    x = next(v for v in model.graph.input if v.name == x_input)
    dims = declared_dims(x)
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
        from_y = _downstream(model, [last.outputs.get("Y", "")])
        for out in (o for o in model.graph.output if o.name in from_y):
            out_dims = declared_dims(out)
            if len(out_dims) == 3 and out_dims[2] == width and out_dims[t_axis]:
                output_T = out_dims[t_axis]
    return T, B, output_T
