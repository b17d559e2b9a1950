"""Why a file's outputs differ from the reference, told by trying what it may compute instead:
the first FAIL line should name the cause, not the symptom.

- A masking model (Keras Masking, Embedding(mask_zero=True)) whose file is right on unpadded
  inputs and wrong on padded ones does not mask as the source does.
- A head whose outputs match the reference's logits under another activation (none, softmax,
  sigmoid, tanh, relu, log-softmax) computes that activation.
Each is a rerun at one size, so it costs what one size of the check costs."""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.model.spec import Head
from harness.model.weights import CanonicalWeights
from harness.model_file.front import draw
from harness.model_file.reference import Budgeted, compare_outputs, reference_for

ACTIVATIONS = {
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
    return _masking(runtime, model, size, seed, budget) or _head(runtime, model, size, seed, budget)


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
