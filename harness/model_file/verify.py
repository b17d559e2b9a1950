"""The check a user's CI runs on a model file: `rnnbench parity --model FILE [--against EXPORT]
[--inputs PATH]` and the pytest fixture both call `verify`. The file as it runs, its export on
the same inputs, and every backend rebuilt from the file's weights, each against the NumPy
reference on those weights. What it finds is returned; the caller prints or asserts."""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness import registry
from harness.files.limits import Refused
from harness.model.errors import BadInput
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec
from harness.model_file.data_check import check_data_set
from harness.model_file.sizes import plan as sizes_plan
from harness.terminal import progress

# The reference's backend, the file's own framework rebuilt from its weights (torch for an ONNX
# or torch file, Keras for a Keras file: its import is paid for already) and ONNX Runtime's
# direct build; a request may name any others.
MODEL_BACKENDS = ("numpy", "torch-cpu", "ort-direct-cpu")
KERAS_BACKENDS = ("numpy", "tf-eager", "ort-direct-cpu")


@dataclasses.dataclass(frozen=True)
class Request:
    """What to check: the source model file, its export, the values to run them on."""

    model: str
    against: str | None = None
    inputs: str | None = None
    spec: ModelSpec | None = None  # what a state_dict holds
    backends: tuple[str, ...] | None = None  # None: MODEL_BACKENDS or KERAS_BACKENDS
    dtypes: tuple[str, ...] | None = None  # None: the file's own dtype
    training: bool = False
    strict_shapes: bool = False  # a file that fixes T or B fails instead of passing with a note


@dataclasses.dataclass
class Outcome:
    """The results (parity BackendResults), training trajectories, and the record's fields."""

    results: list
    training: list
    extra: dict


def verify(request: Request, say: Callable[[str], None] = lambda line: None) -> Outcome:
    """Every check of `request`; `say` hears what was read, one line at a time."""
    from harness.model_file import check
    from harness.model_file.model import open_export, open_model

    data_sets, given = _data_sets(request)
    try:
        model = open_model(request.model, request.spec, given)
    except Refused:
        raise
    except NotSupported as exc:
        if not request.against or request.spec is not None:
            raise
        return _against_running_source(request, exc, say)
    say(f"model: {model.describe()}")
    for note in model.notes:
        say(f"  {note}")
    runtimes = [("model-file", model.runtime)] if model.runtime is not None else []
    if request.against:
        export = open_export(request.against, model)
        why = export.black_box_reason
        how = "native nodes" if export.nodes else "black box" + (f": {why}" if why else "")
        say(f"against: {export.label} ({how})")
        runtimes.append(("export-file", export))
    if data_sets is None:
        data_sets = _source_data_sets(request, model, runtimes)
    dtypes = request.dtypes or (model.spec.dtype,)
    default = KERAS_BACKENDS if model.kind == "keras" else MODEL_BACKENDS
    backends = request.backends or default
    budget = check.budget_of(model)
    plan = sizes_plan([r for _, r in runtimes]) if runtimes else None
    notes = [plan.note()] if plan is not None and plan.note() else []
    results = _file_results(model, runtimes, data_sets, check, plan, budget)
    if notes and request.strict_shapes:
        spec = model.spec
        fields = (spec.cell.value, spec.dtype, spec.num_layers, spec.num_directions)
        results.append(_strict_failure(f"{spec.cell.value}-file-{spec.dtype}", fields, notes[0]))
    results += _backend_results(model, dtypes, backends, budget)
    notes.append(f"error budget: {budget.describe(max(plan.sizes)[0] if plan else 20)}")
    training = _model_training(model, dtypes, backends) if request.training else []
    extra = {"model": _describe(model), "against": request.against, "notes": notes}
    return Outcome(results, training, extra)


def _against_running_source(request: Request, why: NotSupported, say) -> Outcome:
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
        source, about = open_source_runtime(request.model)
    except Refused:
        raise
    except NotSupported:
        raise why from None
    reason = str(why).split(": allowed")[0]
    say(f"model: {source.label}: not a model the reference computes ({reason})")
    say(
        "  its export is checked against it as it runs (outputs), and its own arrays are found "
        "in the export (weights)"
    )
    tokens = about.get("front") is not None and about["front"].tokens
    export = OnnxRuntime(request.against, None, batch_major=about["batch_first"], tokens=tokens)
    say(f"against: {export.label} (black box)")
    plan = sizes_plan([source, export])
    weights = check_export_weights("export-file", export, source)
    result = check.check_against_running_source(source, about, export, list(plan.sizes))
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
    notes = [plan.note()] if plan.note() else []
    if notes and request.strict_shapes:
        results.append(_strict_failure(case, fields, notes[0]))
    return Outcome(results, [], {"against": request.against, "notes": notes})


def _strict_failure(case: str, fields: tuple, note: str):
    """--strict-shapes: a file that fixes T or B is a failure, naming what it fixes."""
    import math

    from harness.parity.checks import Comparison
    from harness.parity.run import BackendResult

    message = f"--strict-shapes: {note}"
    failure = Comparison("file shapes: runs", False, math.nan, math.nan, 0.0, 0.0, message)
    return BackendResult("file-shapes", case, "failed", message, [failure], None, *fields)


def _data_sets(request: Request):
    """(--inputs data sets, the values they give for an ONNX source's weight inputs). For an
    ONNX source they are read before it is opened (its weights may be among them); for any
    other source, keyed by its input's name once it is open (_source_data_sets)."""
    if not request.inputs:
        return [], None
    from harness.model_file.inputs import read_inputs
    from harness.model_file.model import kind_of
    from harness.onnx.reader import graph_input_names, load_model

    if kind_of(request.model) != "onnx":
        return None, None  # read once the source is open
    onnx_model = load_model(request.model)
    outputs = [o.name for o in onnx_model.graph.output]
    sets = read_inputs(request.inputs, graph_input_names(onnx_model), outputs)
    given = _given(sets, onnx_model)
    runs = []
    for data in sets:  # a data set of weights alone gives values; one with x is also a run
        extra = sorted(set(data.inputs) - set(given))
        if extra:
            runs.append(data)
    return runs, given


def _source_data_sets(request: Request, model, runtimes) -> list:
    """--inputs for a Keras, torch or weights-only source: an .npz keyed by its input's name
    (or holding one array), in its own layout. A source that does not run (a state_dict) needs
    an export to run them on; its inputs are checked all the same."""
    from harness.model_file.data_check import file_input, input_names
    from harness.model_file.inputs import read_inputs

    names = input_names(model.runtime) if model.runtime is not None else ["x"]
    sets = read_inputs(request.inputs, names, [])
    for data in sets:
        file_input(data, model)  # bad values are named before anything runs
    if not runtimes:
        raise BadInput(
            f"--inputs: {model.name} ({model.kind}) holds weights only: give --against EXPORT "
            "to run it on these inputs"
        )
    return sets


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
                raise BadInput(
                    f"--inputs: {data.name} gives {name} other values than {sets[0].name}: "
                    "one set of weights per check"
                )
    return given


def _file_results(model, runtimes, data_sets, check, plan, budget) -> list:
    """One BackendResult per runtime (and per data set's shipped outputs)."""
    from harness.model_file.weight_match import check_export_weights
    from harness.parity.run import BackendResult

    sizes = list(plan.sizes) if plan is not None else []
    checks = []
    for role, runtime in runtimes:
        progress(f"{role} {runtime.label}")
        weights_differ = False
        if role == "export-file":  # its weights first: a weight off by 0.1% can hide in outputs
            if runtime.nodes:
                checks.append(check.check_weights(role, runtime, model))
            else:
                checks.append(check_export_weights(role, runtime, model))
            weights_differ = checks[-1].status == "failed"
        checks.append(
            check.check_runtime(
                role, runtime, model, sizes, budget=budget, diagnose_failures=not weights_differ
            )
        )
        for data in data_sets:
            checks += check_data_set(role, runtime, model, data, budget)
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


def _backend_results(model, dtypes, backends, budget=None) -> list:
    """Every backend rebuilt from the file's weights, against the reference, outputs and
    gradients; a reverse-only model on the numpy backend alone (the others cannot say it)."""
    from harness.model.weights import save_weights
    from harness.parity import run as matrix
    from harness.parity.cases import model_cases

    if model.direction == "reverse":
        return _reverse_only_results(model, dtypes, backends)
    folder = tempfile.mkdtemp(prefix="rnnbench-")
    atexit.register(shutil.rmtree, folder, True)
    weights = str(Path(folder) / "model.npz")
    save_weights(model.weights, weights)
    results = []
    for case in model_cases(model.spec.replace(batch_first=False), weights, dtypes):
        progress(case.id)
        results += matrix.run_case(case, backends, budget=budget)
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
