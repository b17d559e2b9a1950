"""One call that predicts a model's parallel-in-time solves before any is run:

    prediction = predict_model(spec, weights, x, backend="torch-cpu", steps=(1024, 4096))

The largest Lyapunov exponent on x (layer 0, forward; over its first LLE_STEPS steps), the laws
fitted on the sweep (laws.py), the probed costs at x's batch (probe.py), then each method at
each T (model.py). Under 5 s at H <= 256 on a 2-core machine: the exponent by Jacobian-vector
products, each probe held to a budget."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import numpy as np

from harness import registry
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights
from harness.predict import laws as law_files
from harness.predict.model import Predictor
from harness.predict.probe import probe
from harness.records.prediction import Prediction
from harness.sweeps import parallel_in_time_work as counts

LLE_STEPS = 2048  # past a few hundred steps the estimate moves by its O(1/T) transient only


def largest_exponent(spec: ModelSpec, weights: CanonicalWeights, x) -> tuple[float | None, int]:
    """(the exponent, the steps it was estimated over); None where it is not finite."""
    spec64 = spec.replace(dtype="float64", batch_first=False)
    params = {k: np.asarray(weights[k], np.float64) for k in weights}
    x = np.asarray(x, np.float64)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    x = x[:LLE_STEPS]
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
    x = np.asarray(x)
    T, B = (x.shape[1], x.shape[0]) if spec.batch_first else (x.shape[0], x.shape[1])
    if lle is None:
        lle, lle_steps = largest_exponent(spec, weights, x)
    laws, source = law_files.load(law_path)
    law_files.require(laws, spec.cell.value, methods, source)
    costs = probe(spec, weights, B, T, backend, methods)
    predictor = Predictor(spec, B, lle, laws, costs)
    lengths = sorted({T, *steps})
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
        seconds=time.perf_counter() - started,
        solves=solves,
    )
