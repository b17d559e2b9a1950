"""One call that predicts a model's parallel-in-time solves before any is run:

    prediction = predict_model(spec, weights, x, backend="torch-cpu", steps=(1024, 4096))

The largest Lyapunov exponent on x (layer 0, forward; over its first LLE_STEPS steps and
LLE_BATCH columns), the laws fitted on the sweep (laws.py), quasi-Newton's iterations counted on
the model at short lengths (counted.py), the probed costs at x's batch (probe.py), then each
method at each T (model.py). Under 5 s at H <= 256 on a 2-core machine: the exponent by
Jacobian-vector products, each probe held to a budget."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

import numpy as np

from harness import registry
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights
from harness.predict import laws as law_files
from harness.predict.counted import COUNT_BATCH, Counted, count_iterations
from harness.predict.model import Predictor
from harness.predict.probe import FRAMEWORKS, probe
from harness.predict.rounding_floor import Floor, newton_floor
from harness.records.prediction import (
    CountedAt,
    CountedIterations,
    FirstIterate,
    FloorRunAt,
    Prediction,
    RoundingFloor,
)
from harness.sweeps import parallel_in_time_work as counts

LLE_STEPS = 2048  # past a few hundred steps the estimate moves by its O(1/T) transient only
# the exponent is the mean over the input's columns, each an estimate of the same number: more
# than a few cost time (3 s of a 6.8 s prediction at B = 32, H = 256) and change it little
LLE_BATCH = 4


def _in_float64(spec: ModelSpec, weights: CanonicalWeights, x):
    """(spec, weights, x) in float64, time-major, x cut to its first LLE_STEPS steps and
    LLE_BATCH columns: what the exponent and the first iterate's growth are measured on."""
    x = np.asarray(x, np.float64)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    params = {k: np.asarray(weights[k], np.float64) for k in weights}
    return spec.replace(dtype="float64", batch_first=False), params, x[:LLE_STEPS, :LLE_BATCH]


def largest_exponent(spec: ModelSpec, weights: CanonicalWeights, x) -> tuple[float | None, int]:
    """(the exponent, the steps it was estimated over); None where it is not finite."""
    spec64, params, x = _in_float64(spec, weights, x)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        lle = registry.parallel_in_time().largest_lyapunov(spec64, params, x).lle
    return (lle if np.isfinite(lle) else None), int(x.shape[0])


def predict_model(
    spec: ModelSpec,
    weights: CanonicalWeights,
    x,
    backend: str = "torch-cpu",
    steps: Iterable[int] = (),
    tol: float = 1e-6,
    max_iter: Mapping[str, int] | None = None,
    methods: tuple[str, ...] = counts.METHODS,
    law_path: str | None = None,
    lle: float | None = None,
    lle_steps: int | None = None,
) -> Prediction:
    """Each method at x's own T and at every T of `steps`, at x's batch (x time-major unless
    spec.batch_first). max_iter: each method's limit (None: T + 1 at each T, the engine's).
    lle: the exponent when already known (then lle_steps says over what)."""
    started = time.perf_counter()
    x, steps = np.asarray(x), tuple(steps)
    T, B = (x.shape[1], x.shape[0]) if spec.batch_first else (x.shape[0], x.shape[1])
    if lle is None:
        lle, lle_steps = largest_exponent(spec, weights, x)
    laws, source = law_files.load(law_path)
    law_files.require(laws, spec.cell.value, methods, source)
    counted = None
    if "quasi-newton" in methods and lle is not None and lle < 0:
        try:
            counted = count_iterations(spec, weights, x, tol, max((T, *steps)))
        except NotSupported:
            counted = None  # a variant: the probe below says so
    costs = probe(spec, weights, B, T, backend, methods)
    growth = first_iterate(spec, weights, x)
    lengths = sorted({T, *steps})
    floor = None
    if "newton" in methods and lle is not None and lle < 0:
        timed = Predictor(spec, B, lle, laws, costs)
        # the probe timed B columns of every layer and direction; a floor run takes these of
        # layer 0's forward recurrence
        share = min(B, COUNT_BATCH) / B / (spec.num_layers * spec.num_directions)
        try:
            framework, device = FRAMEWORKS[backend]
            floor = newton_floor(
                spec,
                weights,
                x,
                tol,
                lengths,
                lambda t: timed.iteration_s("newton", t) * share,
                framework,
                device,
            )
        except NotSupported:
            floor = None
    predictor = Predictor(spec, B, lle, laws, costs, counted, floor, growth)
    limits = dict(max_iter or {})
    solves = [predictor.solve(m, t, tol, limits.get(m)) for m in methods for t in lengths]
    return Prediction(
        lle=lle,
        lle_steps=lle_steps or T,
        laws={m: laws[(spec.cell.value, m)].formula() for m in methods},
        law_source=source,
        backend=backend,
        tol=tol,
        max_iter=dict(max_iter) if max_iter else None,
        probe_lengths=list(costs.lengths),
        counted=_counted_record(counted),
        rounding_floor=_floor_record(floor),
        first_iterate=_first_iterate_record(growth, spec.dtype),
        seconds=time.perf_counter() - started,
        solves=solves,
    )


def first_iterate(spec: ModelSpec, weights: CanonicalWeights, x):
    """The first iterate's growth on what the exponent is measured on (layer 0 alone: the
    head's weights are not read)."""
    spec64, params, x = _in_float64(spec, weights, x)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return registry.parallel_in_time().first_iterate_growth(spec64, params, x)


def _first_iterate_record(growth, dtype: str) -> FirstIterate:
    return FirstIterate(
        steps=growth.steps,
        dense_log_growth=growth.spans["dense"][-1],
        diagonal_log_growth=growth.spans["diagonal"][-1],
        dense_per_step=growth.per_step["dense"],
        diagonal_per_step=growth.per_step["diagonal"],
        log_limit=growth.log_limit(dtype),
    )


def _counted_record(counted: Counted | None) -> CountedIterations | None:
    if counted is None:
        return None
    counts = [CountedAt(steps=t, iterations=k) for t, k in sorted(counted.counts.items())]
    return CountedIterations(
        method=counted.method,
        batch=counted.batch,
        counts=counts,
        float64_iterations=counted.float64_count,
        stalled=counted.stalled,
    )


def _floor_record(floor: Floor | None) -> RoundingFloor | None:
    if floor is None:
        return None
    runs = [
        FloorRunAt(
            steps=r.steps,
            iterations=r.iterations,
            run=r.run,
            first_change=r.first_change if math.isfinite(r.first_change) else None,
            stopped=r.stopped,
        )
        for r in floor.runs
    ]
    return RoundingFloor(batch=floor.batch, runs=runs)
