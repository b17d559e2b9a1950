"""Bring your own ONNX model: read a file whose recurrence is native RNN/LSTM/GRU nodes into a
spec and canonical weights, then check the file, as ONNX Runtime runs it, against the NumPy
reference on those weights. The file runs at its declared input sizes where they are static;
only its dynamic ones are chosen here. Inputs it declares besides x (sequence_lens, initial
states) get real values, and the reference starts from what each recurrent node received.
Anything it cannot read is named: Loop/unrolled recurrences, layout=1, peepholes, non-default
activations, clip, input_forget, GRU with linear_before_reset=0, weights computed at run time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness import registry
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights
from harness.parity.checks import Comparison, compare, compare_all

CELLS = {"RNN": Cell.RNN, "LSTM": Cell.LSTM, "GRU": Cell.GRU}
DEFAULT_ACTIVATIONS = {
    "RNN": ["Tanh"],
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
}
DIRECTIONS = ("forward", "reverse", "bidirectional")
ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
SIZES = ((7, 3), (1, 1))  # (T, B) for the dimensions a file leaves dynamic


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


@dataclasses.dataclass
class FileCheck:
    comparisons: list[Comparison]
    unmatched: list[str]  # outputs with no canonical form of their shape: not compared
    sizes: list[tuple[int, int]]  # the (T, B) it ran at


def _attrs(node) -> dict:
    from onnx import helper

    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for key, value in values.items():
        if isinstance(value, bytes):
            values[key] = value.decode()
        elif isinstance(value, list):
            values[key] = [v.decode() if isinstance(v, bytes) else v for v in value]
    return values


def _constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _load(path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise NotSupported(f"{path} is not a readable ONNX model: {exc}") from None


def read_onnx(path) -> ImportedModel:
    model = _load(path)
    nodes = _recurrent_nodes(model, path)
    values = _constants(model)
    layers = [_layer(node, values) for node in nodes]
    directions = [layer["direction"] for layer in layers]
    if len(set(directions)) > 1:
        raise NotSupported(
            f"{path} has layers running {directions}: allowed one direction for every layer"
        )
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
    spec = spec.replace(batch_first=batch_major)
    T, B = _declared_sizes(model, x_input, spec, path, nodes[-1])
    slots = tuple(tuple(n.input[i] if len(n.input) > i else "" for i in (4, 5, 6)) for n in nodes)
    weights = CanonicalWeights(spec, arrays)
    return ImportedModel(spec, weights, x_input, batch_major, directions[0], T, B, slots)


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
    a = _attrs(node)
    where = f"{node.op_type} node {node.name or node.output[0]!r}"
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
    W, R = (values.get(node.input[i]) for i in (1, 2))
    if W is None or R is None:
        raise NotSupported(f"{where}: W and R are computed at run time: allowed stored ones")
    GH = W.shape[1]
    B = values.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    B = np.zeros((W.shape[0], 2 * GH), W.dtype) if B is None else B
    return {"W": W, "R": R, "Wb": B[:, :GH].copy(), "Rb": B[:, GH:].copy(), "direction": direction}


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


def check_file(path, imported: ImportedModel, sizes=SIZES, seed=0) -> FileCheck:
    """Run the file in ONNX Runtime at its declared sizes (each of `sizes` fills the dynamic
    ones) on random x and random values for its other inputs, and compare each output with the
    reference form (canonical y, h_n, c_n, head, or ONNX's own Y, Y_h, Y_c) of its shape."""
    model = _load(path)
    session, probe = _session(model, path), None
    constants = _constants(model)
    runs = list(dict.fromkeys((imported.T or t, imported.B or b) for t, b in sizes))
    rng = np.random.default_rng(seed)
    comparisons, unmatched = [], set()
    for T, B in runs:
        feed = _feed(session, imported, T, B, rng)
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, _run(session, feed, path, T, B), strict=True))
        wanted = {n for slots in imported.node_inputs for n in slots if n}
        missing = sorted(wanted - set(feed) - set(constants) - set(outputs))
        if missing and probe is None:
            probe = _session(model, path, extra_outputs=missing)
        received = {**constants, **feed, **outputs}
        if missing:
            received.update(
                zip(missing, _run(probe, feed, path, T, B)[-len(missing) :], strict=True)
            )
        x = feed[imported.x_input].astype(np.float64)
        ref = reference(imported, x.transpose(1, 0, 2) if imported.batch_major else x, received)
        forms = _forms(ref, imported)
        for name, value in outputs.items():
            match = _best_match(f"file:{name} (T={T}, B={B})", value, forms, imported.spec.dtype)
            if match is None:
                unmatched.add(f"{name} {list(value.shape)}")
            else:
                comparisons.append(match)
    if not comparisons:
        known = ", ".join(f"{k} {list(v.shape)}" for k, v in forms.items())
        raise NotSupported(
            f"{path}: no output has the shape of a reference output "
            f"(found {', '.join(sorted(unmatched))}; allowed {known})"
        )
    return FileCheck(comparisons, sorted(unmatched), runs)


def _session(model, path, extra_outputs=()):
    """An ONNX Runtime session on CPU; `extra_outputs` also returns those intermediate values
    (what the recurrent nodes received)."""
    import onnx
    import onnxruntime as ort

    if extra_outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in extra_outputs)
    options = ort.SessionOptions()
    options.log_severity_level = 4  # its errors come back as one-line refusals
    try:
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise NotSupported(f"onnxruntime cannot load {path}: {_first_line(exc)}") from None


def _run(session, feed, path, T, B) -> list[np.ndarray]:
    try:
        return session.run(None, feed)
    except Exception as exc:
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feed.items())
        raise NotSupported(
            f"onnxruntime cannot run {path} at T={T}, B={B} ({shapes}): {_first_line(exc)}"
        ) from None


def _first_line(exc) -> str:
    return str(exc).split("Status Message: ")[-1].strip().splitlines()[0][:300]


def _feed(session, imported: ImportedModel, T: int, B: int, rng) -> dict[str, np.ndarray]:
    """x ~ N(0, 1); an integer input is sequence_lens (one full-length sample, the others
    drawn in [1, T]); any other float input is a state ~ N(0, 0.25). Dynamic dims named like
    x's T and B take those sizes, the rest B."""
    t_axis = 1 if imported.batch_major else 0
    x_info = next(v for v in session.get_inputs() if v.name == imported.x_input)
    named = {x_info.shape[t_axis]: T, x_info.shape[1 - t_axis]: B}
    named = {k: v for k, v in named.items() if isinstance(k, str)}
    feed = {}
    for value in session.get_inputs():
        dtype = ORT_TYPES.get(value.type)
        if dtype is None:
            raise NotSupported(
                f"input {value.name!r} has type {value.type}: allowed float, double, int32, int64"
            )
        if value.name == imported.x_input:
            shape = (B, T) if imported.batch_major else (T, B)
            feed[value.name] = rng.standard_normal((*shape, imported.spec.input_size))
        elif np.issubdtype(dtype, np.integer):
            lens = rng.integers(1, T + 1, size=B)
            lens[0] = T
            feed[value.name] = lens
        else:
            shape = [d if isinstance(d, int) else named.get(d, B) for d in value.shape]
            feed[value.name] = 0.5 * rng.standard_normal(shape)
        feed[value.name] = feed[value.name].astype(dtype)
    return feed


def reference(imported: ImportedModel, x, received) -> dict[str, np.ndarray]:
    """The oracle, node for node in float64 on time-major x, each node starting from the
    sequence_lens and initial states it received (names looked up in `received`): the last
    node's Y [T, D, B, H], y [T, B, D*H], h_n and c_n [L*D, B, H], and head."""
    oracle, spec = registry.reference(), imported.spec
    weights = imported.weights.astype("float64")
    X, finals = x, {"h_n": [], "c_n": []}
    for layer, slots in enumerate(imported.node_inputs or [("", "", "")] * spec.num_layers):
        lens, h, c = (received.get(name) if name else None for name in slots)
        bias = np.concatenate([weights[f"l{layer}.Wb"], weights[f"l{layer}.Rb"]], axis=1)
        try:
            Y, Y_h, Y_c = oracle.onnx_op(
                spec.cell.value,
                X,
                weights[f"l{layer}.W"],
                weights[f"l{layer}.R"],
                bias,
                None if lens is None else np.asarray(lens).astype(np.int64),
                None if h is None else np.asarray(h, np.float64),
                None if c is None else np.asarray(c, np.float64),
                direction=imported.direction,
            )
        except ValueError as exc:
            raise NotSupported(
                f"recurrent node {layer} received inputs the reference refuses: {exc}"
            ) from None
        X = oracle.concat_directions(Y)
        finals["h_n"].append(Y_h)
        finals["c_n"].append(Y_c)
    out = {"Y": Y, "y": X, "h_n": np.concatenate(finals["h_n"])}
    if spec.cell is Cell.LSTM:
        out["c_n"] = np.concatenate(finals["c_n"])
    if spec.head is not None:
        last = out["h_n"][-spec.num_directions :].transpose(1, 0, 2).reshape(x.shape[1], -1)
        logits = last @ weights["head.W"].T + weights["head.b"]
        if spec.head.activation == "softmax":
            logits = np.exp(logits - logits.max(axis=-1, keepdims=True))
            logits /= logits.sum(axis=-1, keepdims=True)
        out["head"] = logits
    return out


def _forms(ref, imported: ImportedModel) -> dict[str, np.ndarray]:
    """Every layout an exporter was seen to hand the outputs back in: y time- or batch-major,
    ONNX's Y [T, D, B, H]; the final states stacked, per layer, per direction [B, H] (Keras),
    or the last layer's directions side by side [B, D*H]."""
    D, L = imported.spec.num_directions, imported.spec.num_layers
    forms = {"y": ref["y"], "y(batch-major)": ref["y"].transpose(1, 0, 2), "Y(onnx)": ref["Y"]}
    for key in ("h_n", "c_n"):
        if key not in ref:
            continue
        stacked = ref[key]
        forms[key] = stacked
        forms.update({f"{key}(layer {k})": stacked[k * D : (k + 1) * D] for k in range(L)})
        forms.update({f"{key}[{k}]": stacked[k] for k in range(L * D)})
        forms[f"{key}(last layer, [B, D*H])"] = np.concatenate(list(stacked[-D:]), axis=-1)
    if "head" in ref:
        forms["head"] = ref["head"]
    return forms


def _best_match(name, value, forms, dtype) -> Comparison | None:
    """The comparison with the reference form of the same shape that it is closest to."""
    same_shape = [(k, v) for k, v in forms.items() if v.shape == value.shape]
    if not same_shape:
        return None
    results = [compare(f"{name}~{k}", v, value, dtype) for k, v in same_shape]
    return min(results, key=lambda r: (not r.passed, r.max_abs))


def reverse_only_reason(backend: str) -> str | None:
    """Why `backend` cannot run a reverse-only model (None: it can). Every backend builds from
    a ModelSpec, which has forward and bidirectional only; numpy runs one as the forward model
    on time-reversed sequences (check_reverse_numpy)."""
    if backend == "numpy":
        return None
    target = registry.check_name(backend).target
    if "torch" in target:
        return "reverse-only RNN: PyTorch has none (nn.RNN/LSTM/GRU run forward or both ways)"
    if "tf_backend" in target:
        return "reverse-only RNN: the Keras backend builds forward or Bidirectional layers only"
    return f"reverse-only RNN: {backend} builds from a ModelSpec, which has no reverse direction"


def check_reverse_numpy(imported: ImportedModel, dtype: str, with_lens: bool, seed=0):
    """The numpy backend on a reverse-only model: the forward model on each sample's
    time-reversed valid steps, y reversed back, against the oracle's reverse direction."""
    spec = imported.spec.replace(dtype=dtype, batch_first=False)
    T, B = imported.T or SIZES[0][0], imported.B or SIZES[0][1]
    rng = np.random.default_rng(seed)
    exact = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    x = exact(rng.standard_normal((T, B, spec.input_size)))
    lens = rng.integers(1, T + 1, size=B) if with_lens else np.full(B, T)
    lens[0] = T
    states = (spec.num_layers, B, spec.hidden_size)
    h0, c0 = exact(0.5 * rng.standard_normal(states)), exact(0.5 * rng.standard_normal(states))
    c0 = c0 if spec.cell is Cell.LSTM else None
    received = {"lens": lens, **{f"h{k}": h0[k : k + 1] for k in range(spec.num_layers)}}
    if c0 is not None:
        received.update({f"c{k}": c0[k : k + 1] for k in range(spec.num_layers)})
    slots = [("lens", f"h{k}", f"c{k}") for k in range(spec.num_layers)]
    want = reference(dataclasses.replace(imported, node_inputs=slots), x, received)
    weights = CanonicalWeights(spec, dict(imported.weights.astype(dtype)))
    prepared = registry.get_backend("numpy").build(spec, weights)
    cast = (None if a is None else a.astype(dtype) for a in (_reverse_each(x, lens), h0, c0))
    got = prepared.forward(next(cast), lens if with_lens else None, *cast).as_dict()
    got["y"] = _reverse_each(got["y"], lens)
    return compare_all({k: v for k, v in want.items() if k != "Y"}, got, dtype)


def _reverse_each(a, lens):
    """[T, B, ...] with each sample's first lens[b] steps in reverse order (the rest kept)."""
    out = np.array(a, copy=True)
    for b, n in enumerate(lens):
        out[:n, b] = a[n - 1 :: -1, b]
    return out
