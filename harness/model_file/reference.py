"""What a model file should output: the NumPy reference in float64 on the weights read from the
source model, node for node where the file has native recurrent nodes (each starting from the
sequence_lens and initial states it received, in its own layout), and every layout an exporter
was seen to hand the outputs back in, so that each of the file's outputs is compared with the
reference form it claims to be: by name where it is a recurrent node's own output (Y, Y_h,
Y_c), else by shape."""

from __future__ import annotations

import numpy as np

from harness import registry
from harness.model.protocol import NotSupported
from harness.model.spec import Cell
from harness.model.weights import CanonicalWeights
from harness.onnx.reader import RecurrentNode
from harness.parity.checks import Comparison, compare


def reference(
    weights: CanonicalWeights, direction: str, nodes, x, received, lens=None
) -> dict[str, np.ndarray]:
    """The oracle on time-major float64 x [T, B, I]: per node k its ONNX outputs in the node's
    layout ("Y:k", "Y_h:k", "Y_c:k"), and the model's y [T, B, D*H], Y [T, D, B, H] (the last
    node's), h_n and c_n [L*D, B, H] and head. `nodes` (RecurrentNode per layer, or () for a
    file without native nodes) name the sequence_lens and initial states each layer received,
    looked up in `received`; without them a layer starts from zeros at full length, or at
    `lens` [B] where given."""
    oracle, spec = registry.reference(), weights.spec
    weights = weights.astype("float64")
    nodes = list(nodes) or [None] * spec.num_layers
    if len(nodes) != spec.num_layers:
        raise NotSupported(
            f"the file has {len(nodes)} recurrent nodes where the source model has "
            f"{spec.num_layers} layers"
        )
    X, out = x, {}
    finals: dict[str, list[np.ndarray]] = {"h_n": [], "c_n": []}
    for layer, node in enumerate(nodes):
        Y, Y_h, Y_c = _node(oracle, weights, direction, layer, X, node, received, lens)
        if node is not None:
            out.update(_in_node_layout(node, layer, Y, Y_h, Y_c))
        X = oracle.concat_directions(Y)
        finals["h_n"].append(Y_h)
        finals["c_n"].append(Y_c)
    out.update({"Y": Y, "y": X, "h_n": np.concatenate(finals["h_n"])})
    if spec.cell is Cell.LSTM:
        out["c_n"] = np.concatenate(finals["c_n"])
    if spec.head is not None:
        out["head"] = head(spec, weights, out["h_n"], x.shape[1])
    return out


def _node(
    oracle, weights, direction: str, layer: int, X, node: RecurrentNode | None, received, lens
):
    """The oracle's ONNX op for layer `layer` on time-major X: time-major (Y, Y_h, Y_c)."""
    spec = weights.spec
    given = {}
    for slot in ("sequence_lens", "initial_h", "initial_c"):
        name = node.inputs.get(slot) if node is not None else None
        value = received.get(name) if name else None
        if value is not None and slot != "sequence_lens":
            value = np.asarray(value, np.float64)
            if node is not None and node.layout == 1:  # [B, D, H] -> [D, B, H]
                value = value.transpose(1, 0, 2)
        given[slot] = value
    lens = given["sequence_lens"] if node is not None else lens
    bias = np.concatenate([weights[f"l{layer}.Wb"], weights[f"l{layer}.Rb"]], axis=1)
    try:
        return oracle.onnx_op(
            spec.cell.value,
            X,
            weights[f"l{layer}.W"],
            weights[f"l{layer}.R"],
            bias,
            None if lens is None else np.asarray(lens).astype(np.int64),
            given["initial_h"],
            given["initial_c"],
            weights.peepholes(layer),
            direction=direction,
            linear_before_reset=int(spec.linear_before_reset),
            input_forget=int(spec.input_forget),
            clip=spec.clip,
        )
    except ValueError as exc:
        raise NotSupported(
            f"recurrent node {layer} received inputs the reference refuses: {exc}"
        ) from None


def reference_for(model, nodes, file_input, received) -> dict[str, np.ndarray]:
    """reference() on what the file takes (tokens looked up, masked steps skipped as the model
    skips them: model.front)."""
    from harness.model_file.front import compress, mask_of, recurrence_input, spread

    front = model.front
    x = recurrence_input(front, file_input)
    mask = mask_of(front, file_input)
    if mask is None or mask.all():
        return reference(model.weights, model.direction, nodes, x, received)
    # the source's masking is what an export must reproduce: its nodes' own inputs (lengths
    # it computed, states) do not define the expected outputs, the masked model does
    spec = model.weights.spec
    xc, lens, _ = compress(x, mask)
    ref = reference(model.weights, model.direction, (), xc, received, lens=lens)
    y = spread(ref["y"], mask, spec.num_directions, front.zero_output_for_mask)
    T, B = mask.shape
    ref["y"] = y
    ref["Y"] = y.reshape(T, B, spec.num_directions, -1).transpose(0, 2, 1, 3)
    return ref


def _in_node_layout(node: RecurrentNode, layer: int, Y, Y_h, Y_c) -> dict[str, np.ndarray]:
    """The node's own outputs as it writes them (layout=1: Y [B, T, D, H], states [B, D, H])."""
    if node.layout == 1:
        Y, Y_h = Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2)
        Y_c = None if Y_c is None else Y_c.transpose(1, 0, 2)
    out = {f"Y:{layer}": Y, f"Y_h:{layer}": Y_h}
    if Y_c is not None:
        out[f"Y_c:{layer}"] = Y_c
    return out


def head(spec, weights, h_n, batch: int) -> np.ndarray:
    """The head on the last layer's final states, directions side by side."""
    last = h_n[-spec.num_directions :].transpose(1, 0, 2).reshape(batch, -1)
    logits = last @ weights["head.W"].T + weights["head.b"]
    if spec.head.activation == "softmax":
        logits = np.exp(logits - logits.max(axis=-1, keepdims=True))
        logits /= logits.sum(axis=-1, keepdims=True)
    return logits


def forms(ref: dict[str, np.ndarray], spec) -> dict[str, np.ndarray]:
    """Every layout an exporter was seen to hand the model's outputs back in: y time- or
    batch-major, ONNX's Y [T, D, B, H]; the final states stacked, per layer, per direction
    [B, H] (Keras), or the last layer's directions side by side [B, D*H]; the head."""
    D, L = spec.num_directions, spec.num_layers
    out = {"y": ref["y"], "y(batch-major)": ref["y"].transpose(1, 0, 2), "Y(onnx)": ref["Y"]}
    for key in ("h_n", "c_n"):
        if key not in ref:
            continue
        stacked = ref[key]
        out[key] = stacked
        out.update({f"{key}(layer {k})": stacked[k * D : (k + 1) * D] for k in range(L)})
        out.update({f"{key}[{k}]": stacked[k] for k in range(L * D)})
        out[f"{key}(last layer, [B, D*H])"] = np.concatenate(list(stacked[-D:]), axis=-1)
    if "head" in ref:
        out["head"] = ref["head"]
    return out


# The axis a form's steps run along; a form without one is a final state or the head.
TIME_AXIS = {"y": 0, "y(batch-major)": 1, "Y(onnx)": 0}


def node_output_forms(nodes, ref: dict[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
    """Graph value name -> (what it is, its reference) for every recurrent node's own output."""
    out = {}
    for layer, node in enumerate(nodes):
        for key, name in node.outputs.items():
            if f"{key}:{layer}" in ref:
                out[name] = (f"{key} of node {layer}", ref[f"{key}:{layer}"])
    return out


def _node_time_axis(nodes, what: str) -> int | None:
    """A node's Y runs its steps along axis 0 (layout 0) or 1 (layout 1); its states have none."""
    key, _, layer = what.partition(" of node ")
    return None if key != "Y" else (1 if nodes[int(layer)].layout == 1 else 0)


class Budgeted:
    """compare() with an error budget: atol grown per step along an output's time axis (or to
    the last step), where the budget says the model amplifies its rounding."""

    def __init__(self, budget=None, steps: int = 1, bidirectional: bool = False):
        self.budget, self.steps, self.bidirectional = budget, steps, bidirectional

    def __call__(self, quantity, expected, value, dtype, time_axis=None) -> Comparison:
        if self.budget is None:
            return compare(quantity, expected, value, dtype)
        from harness.parity.budget import step_scale

        # a backward direction's error grows from the end: both directions get the last step's
        axis = None if self.bidirectional else time_axis
        shape = np.shape(expected)
        scale = step_scale(self.budget.for_dtype(dtype), shape, axis, self.steps)
        return compare(quantity, expected, value, dtype, scale, time_axis)


def match(
    name: str, value, candidates: dict[str, np.ndarray], dtype: str, judge=None
) -> Comparison | None:
    """The comparison with the candidate form of the same shape it is closest to; None when no
    form has its shape."""
    judge = judge or Budgeted()
    value = np.asarray(value)
    same_shape = [(k, v) for k, v in candidates.items() if v.shape == value.shape]
    if not same_shape:
        return None
    results = [judge(f"{name}~{k}", v, value, dtype, TIME_AXIS.get(k)) for k, v in same_shape]
    return min(results, key=lambda r: (not r.passed, r.share_of_tolerance, r.max_abs))


def compare_outputs(label: str, outputs: dict, ref: dict, spec, nodes, dtype: str, judge=None):
    """(comparisons, unmatched): each output by name where it is a node's own output, else by
    shape against the model-level forms; `label` prefixes each comparison's name. `judge`: a
    Budgeted compare (default: the plain tolerance)."""
    judge = judge or Budgeted()
    by_name = node_output_forms(nodes, ref)
    model_forms = forms(ref, spec)
    comparisons, unmatched = [], []
    for name, value in outputs.items():
        quantity = f"{label}:{name}"
        if name in by_name:
            what, expected = by_name[name]
            axis = _node_time_axis(nodes, what)
            comparisons.append(
                judge(f"{quantity}~{what}", expected, np.asarray(value), dtype, axis)
            )
            continue
        found = match(quantity, value, model_forms, dtype, judge)
        if found is None:
            unmatched.append(f"{name} {list(np.shape(value))}")
        else:
            comparisons.append(found)
    return comparisons, unmatched
