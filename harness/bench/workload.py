"""What a benchmark case times, built in the current (worker) process from the backend the
registry names: the workload, its implementation class, and the parity checks that must pass
before a single timing counts.

Every workload is built from the same seeded, float32-exact weights and inputs, and is checked
against the NumPy reference run in float64 on them (forward: y and final states; train: the
first step's loss and updated W, R; gemm/peak: the product; bandwidth: the copy). Each mode is
one function below; which backend runs it, and whether it can, is the backend's business."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from harness import registry
from harness.bench import stream_workload
from harness.bench.case import BenchCase
from harness.json_values import JsonObject
from harness.model.flops import GATES, layer_inputs, train_flops
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec
from harness.model.weights import (
    CanonicalWeights,
    digest_arrays,
    float32_exact,
    init_weights,
    load_weights,
)
from harness.parity.checks import Comparison, compare, compare_all

LEARNING_RATE = 0.01
SEED = 0


# Newton stops when no state moves more than this: a tenth of the parity tolerance's atol, so
# that what a slowly contracting iteration still lacks stays inside parity.
SOLVE_TOL = {"float32": 1e-6, "float64": 1e-11}


@dataclasses.dataclass
class Workload:
    run: Callable[[], Any]  # one call, device sync inside
    impl_class: str
    checks: list[Comparison]
    weights_digest: str = ""
    notes: str = ""
    record: JsonObject = dataclasses.field(default_factory=dict)  # more fields to record
    # A round of n calls timed its own way (stream: every call on its own), returning seconds
    # per call like timing.time_round; None: timing.time_round.
    timed_round: Callable[[int], float] | None = None
    min_calls: int = 0  # the rounds add up to at least this many calls
    finish: Callable[[], JsonObject] | None = None  # after the rounds: more fields to record
    # run by the worker at calibration, when no other worker of its group is busy (they build
    # together): fields it returns replace the record's (a prediction's probe times the machine)
    before_timing: Callable[[], JsonObject] | None = None


def open_backend(case: BenchCase):
    """(the case's backend, its library pools as now set): NotSupported when it cannot run
    here (a package or device missing); any other failure is raised as it is."""
    backend = registry.get_backend(case.backend)
    reason = backend.unavailable_reason()
    if reason:
        raise NotSupported(reason)
    return backend, {"requested": case.threads, **backend.set_threads(case.threads)}


def build(case: BenchCase, backend, **options) -> Workload:
    """The workload for `case` on `backend` (registry.get_backend(case.backend), its threads
    already set); NotSupported, with its reason, where it cannot run here. options: a load
    case's policy."""
    if case.cell == "mingru" and case.mode != "gemm":
        return _mingru(case, backend)
    return MODES[case.mode](case, backend, **options)


# ---- data ----------------------------------------------------------------------------------


def inputs64(case: BenchCase, seed: int = SEED + 1) -> np.ndarray:
    """x [T, B, I] in float64, float32-exact."""
    rng = np.random.default_rng(seed)
    return float32_exact(rng.standard_normal((case.steps, case.batch, case.input_size)))


def model_data(case: BenchCase):
    """(spec in the case's dtype, float64 weights, float64 x [T, B, I]), float32-exact: seeded
    weights, or a user's model's own (bench --model), read from its digest-checked file."""
    spec = case.spec
    if not isinstance(spec, ModelSpec):  # minGRU has its own workload (_mingru)
        raise NotSupported(f"{case.id}: no canonical weights for a minGRU case")
    if case.weights_file:
        stored = load_weights(case.weights_file)
        weights64 = CanonicalWeights(spec, dict(stored)).astype("float64")
    else:
        weights64 = init_weights(spec.replace(dtype="float32"), seed=SEED).astype("float64")
    return spec, weights64, inputs64(case)


def _cast(array, dtype):
    return np.ascontiguousarray(array, dtype=dtype)


# ---- forward and training step -------------------------------------------------------------


def _forward(case: BenchCase, backend) -> Workload:
    if registry.check_name(case.backend).runs_file:
        return _forward_file(case, backend)
    spec, weights64, x64 = model_data(case)
    ref = registry.reference().forward(spec.replace(dtype="float64"), dict(weights64), x64)
    weights = weights64.astype(case.dtype)
    prepared = backend.build(spec, weights)
    run, to_outputs = prepared.forward_runner(_cast(x64, case.dtype))
    checks = compare_all(ref.as_dict(), to_outputs(run()).as_dict(), case.dtype)
    return Workload(run, prepared.describe(run), checks, weights.digest(), prepared.notes)


def _forward_file(case: BenchCase, backend) -> Workload:
    """A user's model file run as it is, its outputs matched to the reference's forms (by name
    for an ONNX node's own outputs, else by shape) on the weights read from it."""
    from harness.model_file.front import draw
    from harness.model_file.reference import compare_outputs, reference_for

    spec, weights64, x64 = model_data(case)
    model, runtime = backend.open(case.model_file)
    if not case.weights_file or model.weights.digest() != load_weights(case.weights_file).digest():
        raise ValueError(f"{case.model_file} changed since its weights were saved: time it anew")
    given = x64
    if model.front.tokens:  # what the file takes: tokens, looked up by its own embedding
        given = draw(model.front, spec.input_size, case.steps, case.batch, SEED).file_input
    run, fetch = runtime.runner(given)
    outputs = fetch(run())
    ref = reference_for(model, runtime.nodes, given, {})
    checks, _ = compare_outputs("file", outputs, ref, spec, runtime.nodes, case.dtype)
    impl = f"{model.name} as it is ({runtime.kind})"
    return Workload(run, impl, checks, model.weights.digest(), ", ".join(model.notes))


def _train(case: BenchCase, backend) -> Workload:
    """One step of plain SGD (lr 0.01) on mean((y - goal)^2): forward, BPTT, update; checked
    against the reference's own step in float64: the loss and the updated W and R."""
    spec, weights64, x64 = model_data(case)
    shape = (case.steps, case.batch, case.directions * case.hidden)
    goal64 = float32_exact(np.random.default_rng(SEED + 2).standard_normal(shape))
    reference = registry.get_backend(registry.REFERENCE)
    expected = reference.build(spec.replace(dtype="float64"), weights64)
    ref_run, ref_fetch = expected.train_step_runner(x64, goal64, LEARNING_RATE)
    ref_loss, ref_weights = ref_fetch(ref_run())
    weights = weights64.astype(case.dtype)
    prepared = backend.build(spec, weights)
    x, goal = _cast(x64, case.dtype), _cast(goal64, case.dtype)
    run, fetch = prepared.train_step_runner(x, goal, LEARNING_RATE)
    loss, after = fetch(run())
    checks = [compare("loss", np.float64(ref_loss), np.asarray(loss, case.dtype), case.dtype)]
    # every weight, every layer and direction, the head too: except what the backend trains
    # under another parameterisation (Keras' one LSTM/SimpleRNN bias, b = Wb + Rb)
    other = prepared.train_other_parameters
    for name in sorted(n for n in ref_weights if n.split(".")[-1] not in other):
        checks.append(compare(f"updated {name}", ref_weights[name], after[name], case.dtype))
    impl = prepared.train_impl_class or prepared.impl_class
    input_grad = prepared.train_input_grad
    flops = train_flops(
        case.cell,
        case.batch,
        case.steps,
        case.input_size,
        case.hidden,
        case.layers,
        case.directions,
        input_grad,
    )
    return Workload(run, impl, checks, weights.digest(), record={"flops": flops})


# ---- equal-FLOP matrix product, probes -----------------------------------------------------


def _gemm(case: BenchCase, backend) -> Workload:
    """The case's forward FLOPs as one product per layer and direction into an output of the
    layer's own output size, [T*B, G*(I_l + H)] @ [G*(I_l + H), H]: the same arithmetic with
    every step available at once (minGRU: [T*B, 2*I_l] @ [2*I_l, H])."""
    rng = np.random.default_rng(SEED + 3)
    G, H, rows = GATES[case.cell], case.hidden, case.steps * case.batch
    extra = 0 if case.cell == "mingru" else H
    depths = [
        G * (i + extra) for i in layer_inputs(case.input_size, H, case.layers, case.directions)
    ]
    pairs = [
        (
            float32_exact(rng.standard_normal((rows, k))),
            float32_exact(rng.standard_normal((k, H)) / np.sqrt(k)),
        )
        for k in depths
        for _ in range(case.directions)
    ]
    run, fetch = backend.product_runner(pairs, case.dtype)
    got = fetch(run())
    checks = [compare(f"product {n}", a @ b, got[n], case.dtype) for n, (a, b) in enumerate(pairs)]
    impl = f"one GEMM per layer and direction, all steps at once: {backend.product_label}"
    return Workload(run, impl, checks)


def _peak(case: BenchCase, backend) -> Workload:
    """An N x N product: the machine's attainable FLOP/s in this library."""
    rng = np.random.default_rng(SEED + 4)
    n = case.size
    pair = (
        float32_exact(rng.standard_normal((n, n))),
        float32_exact(rng.standard_normal((n, n))),
    )
    run, fetch = backend.product_runner([pair], case.dtype)
    got = fetch(run())[0]
    check = compare("product", pair[0] @ pair[1], got, case.dtype)
    return Workload(run, f"square GEMM: {backend.product_label}", [check])


def _bandwidth(case: BenchCase, backend) -> Workload:
    """A copy of N elements: the attainable memory bandwidth at that working set."""
    source = _cast(np.random.default_rng(SEED + 4).standard_normal(case.size), case.dtype)
    run, fetch = backend.copy_runner(source)
    return Workload(run, "array copy", [compare("copy", source, fetch(run()), case.dtype)])


# ---- minGRU --------------------------------------------------------------------------------


def _mingru(case: BenchCase, backend) -> Workload:
    mingru = registry.mingru()
    weights = mingru.init_weights(case.input_size, case.hidden, case.layers, SEED, "float32")
    weights64 = {k: v.astype(np.float64) for k, v in weights.items()}
    x64 = inputs64(case)
    ref_y, ref_h = mingru.forward_sequential(weights64, x64)
    params = {k: _cast(v, case.dtype) for k, v in weights64.items()}
    sequential = case.mode == "sequential"
    run, fetch = backend.mingru_runner(params, _cast(x64, case.dtype), sequential)
    y, h = fetch(run())
    checks = [compare("y", ref_y, y, case.dtype), compare("h_n", ref_h, h, case.dtype)]
    form = "step loop" if sequential else "parallel scan (log2 T rounds)"
    impl = f"minGRU {form}, {backend.impl_label or backend.name}"
    return Workload(run, impl, checks, digest_arrays(weights))


# ---- parallel in time ----------------------------------------------------------------------


def _parallel_in_time(case: BenchCase, backend) -> Workload:
    """The whole sequence solved by Newton (or quasi-Newton) iterations from an all-zero guess,
    timed as one call; a run that does not converge is a failed case, never a timing."""
    spec, weights64, x64 = model_data(case)
    spec64 = spec.replace(dtype="float64")
    ref = registry.reference().forward(spec64, dict(weights64), x64).as_dict()
    ref.pop("head", None)  # the solver returns the recurrent outputs
    tol, max_iter = SOLVE_TOL[case.dtype], case.steps + 1  # exact after T steps, up to rounding
    weights = weights64.astype(case.dtype)
    lle = registry.parallel_in_time().model_lyapunov(spec64, dict(weights64), x64).lle
    lle = lle if math.isfinite(lle) else None  # a diverging estimate is unknown, not a number
    run, fetch = backend.parallel_in_time_runner(
        spec, dict(weights), _cast(x64, case.dtype), case.mode, tol, max_iter
    )
    result = run()
    solve = {
        "method": case.mode,
        "tol": tol,
        "max_iter": max_iter,
        "lle": lle,
        "converged": result.converged,
        "iterations": result.iterations,
        "reason": result.reason,
        "prediction": None,
    }
    notes = ""
    if result.converged:
        outputs, _ = fetch(result)
        checks = compare_all(ref, outputs.as_dict(), case.dtype)
    else:
        checks = [not_converged(result.reason, result.residuals)]
        # a failed case is not timed: its prediction (did it say "does not converge"?) is made
        # here, beside the group's other builds: only its verdict is compared, and its probed
        # times and budget-bound counts may read the load
        solve["prediction"], notes = _prediction(case, weights, x64, tol, lle)
    iteration = backend.parallel_in_time_iteration(case.mode)
    impl = f"{case.mode} iterations over all T ({backend.impl_label or backend.name}"
    impl += f": {iteration})" if iteration else ")"

    def predicted() -> JsonObject:
        prediction, note = _prediction(case, weights, x64, tol, lle)
        return {"parallel_in_time": {**solve, "prediction": prediction}, "notes": note}

    record = {"parallel_in_time": solve}
    return Workload(
        run, impl, checks, weights.digest(), notes, record=record, before_timing=predicted
    )


def _prediction(
    case: BenchCase, weights, x64, tol: float, lle: float | None
) -> tuple[JsonObject | None, str]:
    """(the case's solve as predicted from its exponent and a probe of this machine, as a
    dict; a note), or (None, why not) where no prediction can be made. Made before the solve
    is timed and from nothing its run found (its iterations, its time)."""
    from harness.predict.api import predict_model
    from harness.predict.errors import CannotPredict

    x, spec = _cast(x64, case.dtype), case.spec
    if not isinstance(spec, ModelSpec):
        return None, "no prediction: minGRU has no Newton solve"
    try:
        made = predict_model(spec, weights, x, case.backend, tol=tol, methods=(case.mode,), lle=lle)
    except CannotPredict as exc:
        return None, f"no prediction: {exc}"
    return made.solves[0].model_dump(), f"predicted in {made.seconds:.1f} s ({made.law_source})"


def not_converged(reason: str | None, residuals) -> Comparison:
    last = residuals[-1] if residuals else float("nan")
    return Comparison(
        "converged",
        False,
        float("nan"),
        float("nan"),
        0.0,
        0.0,
        f"converged: no ({reason}; last change {last:.3g})",
    )


# ---- one step per call ---------------------------------------------------------------------


def _stepped(case: BenchCase, backend, **load) -> Workload:
    """stream and load: the model's stateful step, T single steps proven equal to the whole
    sequence first (harness/bench/stream_workload.py says how each is timed). load: a load
    case's policy (default: the suite's)."""
    spec, weights64, x64 = model_data(case)
    ref = registry.reference().forward(spec.replace(dtype="float64"), dict(weights64), x64)
    weights = weights64.astype(case.dtype)
    prepared = backend.build(spec, weights)
    make = stream_workload.stream if case.mode == "stream" else stream_workload.load
    job = make(case, prepared.step_runner(), _cast(x64, case.dtype), ref, **load)
    return Workload(weights_digest=weights.digest(), notes=prepared.notes, **job)


MODES: dict[str, Callable[[BenchCase, Any], Workload]] = {
    "forward": _forward,
    "train": _train,
    "gemm": _gemm,
    "peak": _peak,
    "bandwidth": _bandwidth,
    "newton": _parallel_in_time,
    "quasi-newton": _parallel_in_time,
    "stream": _stepped,
    "load": _stepped,
}
