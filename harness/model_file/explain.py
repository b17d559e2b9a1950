"""Why a file's outputs differ from the reference, told by trying what it may compute instead:
the first FAIL line should name the cause, not the symptom.

- A masking model (Keras Masking, Embedding(mask_zero=True)) whose file is right on unpadded
  inputs and wrong on padded ones does not mask as the source does.
- A head whose outputs match the reference's logits under another activation (none, softmax,
  sigmoid, tanh, relu, log-softmax) computes that activation.
Each is a rerun at one size, so it costs what one size of the check costs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from harness.model.spec import Head
from harness.model.weights import CanonicalWeights
from harness.model_file.front import draw
from harness.model_file.reference import Budgeted, compare_outputs, reference_for

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda z: z,
    "softmax": lambda z: _softmax(z),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "log-softmax": lambda z: np.log(_softmax(z)),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def explain(runtime, model, size, seed: int, budget) -> str:
    """The cause of the outputs' difference at `size` (T, B), or '' when no trial explains it."""
    return (
        _masking(runtime, model, size, seed, budget)
        or _head(runtime, model, size, seed, budget)
        or _cell_activations(runtime, model)
    )


# ONNX ops that compute an activation, and the ones each cell's equations use
ACTIVATION_OPS = {
    "Sigmoid", "Tanh", "Relu", "LeakyRelu", "HardSigmoid", "Elu", "Selu", "Softsign",
    "Softplus", "ThresholdedRelu", "ScaledTanh", "Affine", "HardSwish", "Gelu", "Mish",
}  # fmt: skip
CELL_OPS = {"rnn": {"Tanh"}, "lstm": {"Sigmoid", "Tanh"}, "gru": {"Sigmoid", "Tanh"}}
DEFAULTS = {"RNN": ["tanh"], "LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}


def _cell_activations(runtime, model) -> str:
    """An ONNX file whose recurrence computes activations its cell does not: a native node's
    `activations` attribute, or the activation ops inside a Loop/Scan body."""
    graph = getattr(getattr(runtime, "model", None), "graph", None)
    if graph is None:
        return ""
    cell = model.spec.cell.value
    for node in graph.node:
        if node.op_type not in DEFAULTS:
            continue
        acts = [
            v.decode(errors="replace").lower()
            for attribute in node.attribute
            if attribute.name == "activations"
            for v in attribute.strings
        ]
        defaults = DEFAULTS[node.op_type]
        if acts and acts[: len(defaults)] != defaults:
            return (
                f"{runtime.label}'s {node.op_type} node {node.name!r} sets activations {acts} "
                f"where a {cell} computes {defaults}: an activation differs"
            )
    loops = [node for node in graph.node if node.op_type in ("Loop", "Scan")]
    found = set().union(*(_ops(node) for node in loops)) & ACTIVATION_OPS if loops else set()
    if not found:
        return ""
    extra, missing = found - CELL_OPS[cell], CELL_OPS[cell] - found
    if not (extra or missing):
        return ""
    parts = []
    if extra:
        parts.append(f"computes {', '.join(sorted(extra))}")
    if missing:
        parts.append(f"computes no {', '.join(sorted(missing))}")
    return (
        f"{runtime.label}'s recurrence (a {loops[0].op_type} body) {' and '.join(parts)} "
        f"where a {cell} computes {', '.join(sorted(CELL_OPS[cell]))}: an activation differs"
    )


def _ops(node) -> set[str]:
    """The op types of every subgraph of `node`, recursively."""
    found = set()
    for attribute in node.attribute:
        graphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField("g") else [])
        for graph in graphs:
            for inner in graph.node:
                found.add(inner.op_type)
                found |= _ops(inner)
    return found


def _right(runtime, model, file_input, rng, budget, T: int, front=None) -> bool:
    run = runtime.run(file_input, rng)
    subject = model if front is None else dataclasses.replace(model, front=front)
    ref = reference_for(subject, runtime.nodes, file_input, run.received)
    judge = Budgeted(budget, T, model.direction != "forward")
    comparisons, _ = compare_outputs(
        "explain", run.outputs, ref, model.spec, runtime.nodes, model.spec.dtype, judge
    )
    return bool(comparisons) and all(c.passed for c in comparisons)


def _masking(runtime, model, size, seed, budget) -> str:
    front = model.front
    if not front.masks:
        return ""
    T, B = size
    plain = dataclasses.replace(front, mask_value=None, mask_zero=False)
    unpadded = draw(plain, model.spec.input_size, T, B, seed)
    rng = np.random.default_rng([seed, T, B, 1])
    try:
        if not _right(runtime, model, unpadded.file_input, rng, budget, T):
            return ""
    except RuntimeError:
        return ""
    what = (
        f"steps equal to {front.mask_value:g}"
        if front.mask_value is not None
        else "token 0 (Embedding mask_zero)"
    )
    return (
        f"{runtime.label} is right on unpadded inputs but wrong on padded ones: it does not "
        f"mask as the source does ({', '.join(front.layers) or 'the source'} masks {what})"
    )


def _head(runtime, model, size, seed, budget) -> str:
    spec = model.spec
    if spec.head is None:
        return ""
    T, B = size
    drawn = draw(model.front, spec.input_size, T, B, seed)
    run = runtime.run(drawn.file_input, np.random.default_rng([seed, T, B, 1]))
    plain = spec.replace(head=Head(spec.head.units, "none"))
    logits_model = dataclasses.replace(
        model, spec=plain, weights=CanonicalWeights(plain, dict(model.weights))
    )
    ref = reference_for(logits_model, runtime.nodes, drawn.file_input, run.received)
    logits = ref["head"]
    judge = Budgeted(budget, T, model.direction != "forward")
    for name, activation in ACTIVATIONS.items():
        if name == spec.head.activation:
            continue
        trial = {**ref, "head": activation(logits)}
        comparisons, _ = compare_outputs(
            "explain", run.outputs, trial, plain, runtime.nodes, spec.dtype, judge
        )
        if comparisons and all(c.passed for c in comparisons):
            return (
                f"{runtime.label}'s head computes {name} where the source's computes "
                f"{spec.head.activation}: the head's activation differs"
            )
    return ""
