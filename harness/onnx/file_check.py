"""Bring your own ONNX model, the checking half: the file read by harness/onnx/reader.py, as
ONNX Runtime runs it, against the NumPy reference on the weights read from it. The file runs at
its declared input sizes where they are static; only its dynamic ones are chosen here. Inputs it
declares besides x (sequence_lens, initial states) get real values, and the reference starts
from what each recurrent node received. A reverse-only model, which no backend builds from a
ModelSpec, is checked on the numpy backend run forward on time-reversed sequences.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness import registry
from harness.model.protocol import NotSupported
from harness.model.spec import Cell
from harness.model.weights import CanonicalWeights
from harness.onnx.reader import ImportedModel, constant_values, load_model
from harness.parity.checks import Comparison, compare, compare_all

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
SIZES = ((7, 3), (1, 1))  # (T, B) for the dimensions a file leaves dynamic


@dataclasses.dataclass
class FileCheck:
    comparisons: list[Comparison]
    unmatched: list[str]  # outputs with no canonical form of their shape: not compared
    sizes: list[tuple[int, int]]  # the (T, B) it ran at


def check_file(path, imported: ImportedModel, sizes=SIZES, seed=0) -> FileCheck:
    """Run the file in ONNX Runtime at its declared sizes (each of `sizes` fills the dynamic
    ones) on random x and random values for its other inputs, and compare each output with the
    reference form (canonical y, h_n, c_n, head, or ONNX's own Y, Y_h, Y_c) of its shape."""
    file = _FileSession(path, imported)
    runs = list(dict.fromkeys((imported.T or t, imported.B or b) for t, b in sizes))
    rng = np.random.default_rng(seed)
    comparisons, unmatched = [], set()
    for T, B in runs:
        feed = _feed(file.session, imported, T, B, rng)
        outputs, received = file.run(feed, T, B)
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


class _FileSession:
    """The file loaded in ONNX Runtime, and a second session (made when first needed) that also
    returns the intermediate values its recurrent nodes read as extra inputs."""

    def __init__(self, path, imported: ImportedModel):
        self.path, self.imported = path, imported
        self.model = load_model(path)
        self.session, self.probe = _session(self.model, path), None
        self.constants = constant_values(self.model)

    def run(self, feed, T: int, B: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(the file's outputs by name, every value received: constants, feed, outputs and the
        intermediate values the recurrent nodes' sequence_lens and initial states name)."""
        names = [o.name for o in self.session.get_outputs()]
        outputs = dict(zip(names, _run(self.session, feed, self.path, T, B), strict=True))
        wanted = {n for slots in self.imported.node_inputs for n in slots if n}
        missing = sorted(wanted - set(feed) - set(self.constants) - set(outputs))
        if missing and self.probe is None:
            self.probe = _session(self.model, self.path, extra_outputs=missing)
        received = {**self.constants, **feed, **outputs}
        if missing:
            probed = _run(self.probe, feed, self.path, T, B)[-len(missing) :]
            received.update(zip(missing, probed, strict=True))
        return outputs, received


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
        given = (received.get(name) if name else None for name in slots)
        Y, Y_h, Y_c = _reference_node(oracle, imported, weights, layer, X, *given)
        X = oracle.concat_directions(Y)
        finals["h_n"].append(Y_h)
        finals["c_n"].append(Y_c)
    out = {"Y": Y, "y": X, "h_n": np.concatenate(finals["h_n"])}
    if spec.cell is Cell.LSTM:
        out["c_n"] = np.concatenate(finals["c_n"])
    if spec.head is not None:
        out["head"] = _reference_head(spec, weights, out["h_n"], x.shape[1])
    return out


def _reference_node(oracle, imported: ImportedModel, weights, layer: int, X, lens, h, c):
    """The oracle's ONNX op for recurrent node `layer` on X: (Y, Y_h, Y_c)."""
    bias = np.concatenate([weights[f"l{layer}.Wb"], weights[f"l{layer}.Rb"]], axis=1)
    try:
        return oracle.onnx_op(
            imported.spec.cell.value,
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


def _reference_head(spec, weights, h_n, batch: int) -> np.ndarray:
    """The head on the last layer's final states, directions side by side."""
    last = h_n[-spec.num_directions :].transpose(1, 0, 2).reshape(batch, -1)
    logits = last @ weights["head.W"].T + weights["head.b"]
    if spec.head.activation == "softmax":
        logits = np.exp(logits - logits.max(axis=-1, keepdims=True))
        logits /= logits.sum(axis=-1, keepdims=True)
    return logits


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
