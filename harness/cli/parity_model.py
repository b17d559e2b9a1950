"""`rnnbench parity --model FILE [--against EXPORT] [--inputs PATH]`: the user's model file as
it runs, its export on the same inputs, and every backend rebuilt from the file's weights, each
against the NumPy reference on those weights. What CI runs to catch a bad export."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path

from harness import registry
from harness.cli.errors import UsageError, names, progress
from harness.cli.parity import KERAS_BACKENDS, MODEL_BACKENDS, dtypes_of, finish, model_cases
from harness.model.protocol import NotSupported
from harness.model.spec import load_spec
from harness.model_file.limits import Refused


def run_model(args) -> int:
    from harness.model_file import check
    from harness.model_file.model import open_export, open_model

    started = time.perf_counter()
    data_sets, given = _data_sets(args)
    spec = load_spec(args.spec) if args.spec else None
    try:
        model = open_model(args.model, spec, given)
    except Refused:
        raise
    except NotSupported as exc:
        if not args.against or spec is not None:
            raise
        return _against_running_source(args, exc, started)
    print(f"model: {model.describe()}")
    for note in model.notes:
        print(f"  {note}")
    runtimes = [("model-file", model.runtime)] if model.runtime is not None else []
    if args.against:
        export = open_export(args.against, model)
        why = export.black_box_reason
        how = "native nodes" if export.nodes else "black box" + (f": {why}" if why else "")
        print(f"against: {export.label} ({how})")
        runtimes.append(("export-file", export))
    dtypes = dtypes_of(args.dtype, model.spec.dtype)
    default = KERAS_BACKENDS if model.kind == "keras" else MODEL_BACKENDS
    backends = names(args.backends or ",".join(default), registry.BACKENDS, "backend")
    results = _file_results(model, runtimes, data_sets, check)
    results += _backend_results(model, dtypes, backends)
    training = _model_training(model, dtypes, backends) if args.training else []
    extra = {"model": _describe(model), "against": args.against}
    return finish(args, results, training, started, extra)


def _against_running_source(args, why, started) -> int:
    """A Keras or TorchScript source the reference does not compute (layers of two sizes, a
    Dense on every step): its export is checked against it as it runs, on the same inputs, at
    every size, and each of its own arrays is found in the export and compared. Any other
    file keeps the refusal."""
    from harness.model_file import check
    from harness.model_file.model import open_source_runtime
    from harness.model_file.runtime import OnnxRuntime
    from harness.model_file.weight_match import check_export_weights
    from harness.parity.run import BackendResult

    try:
        source, about = open_source_runtime(args.model)
    except NotSupported:
        raise why from None
    reason = str(why).split(": allowed")[0]
    print(f"model: {source.label}: not a model the reference computes ({reason})")
    print(
        "  its export is checked against it as it runs (outputs), and its own arrays are found "
        "in the export (weights)"
    )
    export = OnnxRuntime(args.against, None, batch_major=about["batch_first"])
    print(f"against: {export.label} (black box)")
    sizes = check.plan_sizes([source, export])
    weights = check_export_weights("export-file", export, source)
    result = check.check_against_running_source(source, about, export, sizes)
    case = f"{about['cell']}-file-{about['dtype']}"
    fields = (about["cell"], about["dtype"], about["layers"], about["directions"])
    results = [
        BackendResult(
            "export-file",
            case,
            c.status,
            c.reason if c.status == "skipped" else c.note,
            c.comparisons,
            None,
            *fields,
        )
        for c in (weights, result)
    ]
    return finish(args, results, [], started, {"against": args.against})


def _data_sets(args):
    """(--inputs data sets, the graph-input values other than the sequence they give)."""
    if not args.inputs:
        return [], None
    from harness.model_file.inputs import read_inputs
    from harness.model_file.model import kind_of
    from harness.onnx.reader import graph_input_names, load_model

    if kind_of(args.model) != "onnx":
        raise UsageError(
            "--inputs gives values of an ONNX file's graph inputs; --model is not ONNX"
        )
    onnx_model = load_model(args.model)
    outputs = [o.name for o in onnx_model.graph.output]
    sets = read_inputs(args.inputs, graph_input_names(onnx_model), outputs)
    given = _given(sets, onnx_model)
    runs = []
    for data in sets:  # a data set of weights alone gives values; one with x is also a run
        extra = sorted(set(data.inputs) - set(given))
        if extra:
            runs.append(data)
    return runs, given


def _given(sets, onnx_model) -> dict:
    """The values every data set gives for inputs that feed recurrent weights (W, R, B, P):
    the weights the reference uses. Data sets that disagree on them are refused."""
    import numpy as np

    slots = {}
    for node in onnx_model.graph.node:
        if node.op_type in ("RNN", "LSTM", "GRU"):
            for position in (1, 2, 3, 7):
                if len(node.input) > position and node.input[position]:
                    slots[node.input[position]] = True
    given = {k: v for k, v in sets[0].inputs.items() if k in slots}
    for data in sets[1:]:
        for name, value in given.items():
            if name in data.inputs and not np.array_equal(data.inputs[name], value):
                raise UsageError(
                    f"--inputs: {data.name} gives {name} other values than {sets[0].name}: "
                    "one set of weights per check"
                )
    return given


def _file_results(model, runtimes, data_sets, check) -> list:
    """One BackendResult per runtime (and per data set's shipped outputs)."""
    from harness.model_file.weight_match import check_export_weights
    from harness.parity.run import BackendResult

    sizes = check.plan_sizes([r for _, r in runtimes]) if runtimes else []
    checks = []
    for role, runtime in runtimes:
        progress(f"{role} {runtime.label}")
        if role == "export-file":  # its weights first: a weight off by 0.1% can hide in outputs
            if runtime.nodes:
                checks.append(check.check_weights(role, runtime, model))
            else:
                checks.append(check_export_weights(role, runtime, model))
        checks.append(check.check_runtime(role, runtime, model, sizes))
        if role == "model-file":
            for data in data_sets:
                checks += check.check_data_set(role, runtime, model, data)
    progress("")
    case = f"{model.spec.cell.value}-file-{model.spec.dtype}"
    return [
        BackendResult.of(
            c.role,
            model.spec,
            case,
            c.status,
            c.reason if c.status == "skipped" else c.note,
            c.comparisons,
        )
        for c in checks
    ]


def _backend_results(model, dtypes, backends) -> list:
    """Every backend rebuilt from the file's weights, against the reference, outputs and
    gradients; a reverse-only model on the numpy backend alone (the others cannot say it)."""
    from harness.model.weights import save_weights
    from harness.parity import run as matrix

    if model.direction == "reverse":
        return _reverse_only_results(model, dtypes, backends)
    folder = tempfile.mkdtemp(prefix="rnnbench-")
    atexit.register(shutil.rmtree, folder, True)
    weights = str(Path(folder) / "model.npz")
    save_weights(model.weights, weights)
    results = []
    for case in model_cases(model.spec.replace(batch_first=False), weights, dtypes):
        progress(case.id)
        results += matrix.run_case(case, backends)
    progress("")
    return results


def _reverse_only_results(model, dtypes, backends) -> list:
    """numpy as the forward model on time-reversed sequences; every other backend skipped with
    the reason it cannot express a reverse-only RNN."""
    from harness.model_file.reverse import check_reverse_numpy
    from harness.parity.run import BackendResult

    spec, results = model.spec, []
    for dtype in dtypes:
        for lens in (False, True):
            case = f"{spec.cell.value}-L{spec.num_layers}-rev-{'lens' if lens else 'full'}-{dtype}"
            for name in backends:
                entry = registry.check_name(name)
                reason = registry.unavailable_reason(name)
                if reason is None and not entry.reverse_only:
                    reason = f"reverse-only RNN: {name} builds forward or bidirectional layers only"
                reason = reason or registry.spec_reason(name, spec)
                if reason:
                    results.append(
                        BackendResult.of(name, spec.replace(dtype=dtype), case, "skipped", reason)
                    )
                    continue
                comparisons = check_reverse_numpy(model, dtype, lens)
                status = "passed" if all(c.passed for c in comparisons) else "failed"
                note = "forward only: the forward model on each sample's reversed steps"
                results.append(
                    BackendResult.of(
                        name, spec.replace(dtype=dtype), case, status, note, comparisons
                    )
                )
    return results


def _model_training(model, dtypes, backends):
    from harness.parity.training import run_model_trajectories

    return [t for dtype in dtypes for t in run_model_trajectories(model.weights, dtype, backends)]


def _describe(model) -> dict:
    return {
        "path": model.path,
        "kind": model.kind,
        "direction": model.direction,
        "spec": model.spec.to_dict(),
        "weights_digest": model.weights.digest(),
        "notes": list(model.notes),
    }
