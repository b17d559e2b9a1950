"""`--inputs`: the model file (and its export) run on a user's own data, for every source kind.

The data set's sequence is what the source takes, in its own layout (a Keras model's
batch-major [B, T, I], or tokens [B, T]; a torch model's as its batch_first says; an ONNX
file's as its graph input declares). It is checked before anything runs (exit 2, naming the
input and what is allowed): its rank, dtype and feature size, T and B at least 1, every value
finite, tokens inside the vocabulary. Masked steps are the model's own (steps equal to a
Masking layer's mask_value, token 0 under mask_zero). An ONNX source also gets the data's other
graph inputs, and the outputs shipped beside them (output_*.pb) are compared with the same
reference."""

from __future__ import annotations

import math
import ntpath

import numpy as np

from harness.model.errors import BadInput
from harness.model_file.outcome import RuntimeCheck, judged
from harness.model_file.reference import Budgeted, compare_outputs, reference_for
from harness.onnx.session import KernelGap, OrtError
from harness.parity.checks import Comparison


def batch_major(runtime) -> bool:
    """Whether the runtime takes its sequence batch-major ([B, T, ...])."""
    for name in ("batch_major", "batch_first"):
        value = getattr(runtime, name, None)
        if value is not None:
            return bool(value)
    return False


def input_names(runtime) -> list[str]:
    """The names --inputs may key the runtime's inputs by."""
    names = getattr(runtime, "input_names", None)
    if names:
        return list(names)
    if hasattr(runtime, "graph_inputs"):
        return [v.name for v in runtime.graph_inputs]
    return ["x"]


def sequence_name(runtime) -> str:
    return getattr(runtime, "x_input", None) or input_names(runtime)[0]


def source_layout(model) -> tuple[str, bool]:
    """(the name the source's sequence input goes by, batch-major?): its runtime's where it
    runs, else (a state_dict, rnnbench weights) "x" laid out as its spec says."""
    if model.runtime is not None:
        return sequence_name(model.runtime), batch_major(model.runtime)
    return "x", bool(model.spec.batch_first)


def file_input(data, model) -> np.ndarray:
    """The data set's sequence as the source takes it (its name, or the data set's one array;
    its layout), checked, time-major."""
    name, major = source_layout(model)
    if name not in data.inputs and len(data.inputs) == 1:
        name = next(iter(data.inputs))
    if name not in data.inputs:
        raise BadInput(
            f"--inputs {data.name} gives {', '.join(sorted(data.inputs))} but not the sequence "
            f"input {name!r}: give it too"
        )
    value = np.asarray(data.inputs[name])
    front, I = model.front, model.spec.input_size
    layout = "[B, T" if major else "[T, B"
    if front.tokens:
        allowed = f"integer tokens {layout}] in [0, {front.vocabulary})"
        ok = value.ndim == 2 and value.dtype.kind in "iu"
    else:
        allowed = f"float {layout}, {I}] (finite)"
        ok = value.ndim == 3 and value.shape[2] == I and value.dtype.kind == "f"
    where = f"--inputs {data.name}: {name!r}"
    if not ok:
        raise BadInput(f"{where} is {value.dtype} {list(value.shape)}: allowed {allowed}")
    if 0 in value.shape[:2]:
        raise BadInput(
            f"{where} has shape {list(value.shape)}, no steps or no samples: allowed "
            f"T >= 1 and B >= 1"
        )
    if front.tokens:
        bad = (value < 0) | (value >= front.vocabulary)
        what = "token"
    else:
        bad = ~np.isfinite(value)
        what = "value"
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BadInput(f"{where} holds {what} {value[index]} at index {index}: allowed {allowed}")
    return np.swapaxes(value, 0, 1) if major else value


def check_data_set(role, runtime, model, data, budget=None) -> list[RuntimeCheck]:
    """The file (or export) on one --inputs data set (skipped with ORT's reason where it
    cannot run it); for an ONNX source, the outputs shipped with the data too."""
    x = file_input(data, model)
    T, B = x.shape[:2]
    onnx_feed = hasattr(runtime, "run_feed") and role == "model-file"
    if onnx_feed:
        feed = _onnx_feed(runtime, data, x)
        received = {**runtime.constants, **feed}
    checks = []
    label = f"{role} on {ntpath.basename(data.name)}"
    judge = Budgeted(budget, T, model.direction != "forward")
    try:
        run = runtime.run_feed(feed) if onnx_feed else runtime.run(x, None)
        received = run.received
        ref = reference_for(model, runtime.nodes, x, received)
        comparisons, unmatched = compare_outputs(
            label, run.outputs, ref, model.spec, runtime.nodes, model.spec.dtype, judge
        )
        checks.append(
            judged(
                RuntimeCheck(role, runtime.label, "passed", "", comparisons, [(T, B)], unmatched)
            )
        )
    except KernelGap as exc:
        checks.append(RuntimeCheck(role, runtime.label, "skipped", str(exc)))
    except (OrtError, RuntimeError) as exc:
        failure = Comparison(label, False, math.nan, math.nan, 0.0, 0.0, str(exc))
        checks.append(RuntimeCheck(role, runtime.label, "failed", str(exc), [failure], [(T, B)]))
    if onnx_feed and data.outputs:
        ref = reference_for(model, runtime.nodes, x, received)
        comparisons, unmatched = compare_outputs(
            f"shipped {ntpath.basename(data.name)}",
            data.outputs,
            ref,
            model.spec,
            runtime.nodes,
            model.spec.dtype,
            judge,
        )
        checks.append(
            judged(
                RuntimeCheck(
                    "shipped-outputs", data.name, "passed", "", comparisons, [(T, B)], unmatched
                )
            )
        )
    return checks


def _onnx_feed(runtime, data, x) -> dict[str, np.ndarray]:
    """Every graph input of an ONNX source from the data set, the sequence as checked."""
    feed = runtime.feed(x, np.random.default_rng(0))
    missing = sorted(set(feed) - set(data.inputs))
    if missing:
        raise BadInput(f"--inputs {data.name} has no value for graph input {missing[0]!r}")
    out = {}
    for name, value in data.inputs.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise BadInput(
                f"--inputs {data.name}: {name!r} holds {value[index]} at index {index}: "
                "allowed finite values"
            )
        out[name] = value.astype(feed[name].dtype)
    return out
