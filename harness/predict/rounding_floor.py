"""Newton's count where rounding, not the exponent, sets it (backends/parallel_in_time/
rounding_floor.py measures it): Newton started at the model's own sequential states, in its
dtype and in the framework the solve runs on (its kernels' rounding is the floor), on the first
COUNT_BATCH columns of its input (repeated in time past its length), at each
T predicted while the budget lasts, shortest first.

Read at T (`Floor.count`): a run at T that converged after k iterations says the solve takes at
least k (the law's count to reach the floor, then the floor's: by hand, NumPy's floor runs against
NumPy's float32 solves from zero, float64's count standing for the law's, the larger of the two was
within 1.9x in 24 stalled or borderline cases, median |ln error| 0.07, where their sum's median was
0.15); a run still above tol after STALLED_RUN iterations when the budget ran out, T + 1. A T not
run, or whose run was cut sooner or ended on a non-finite value, reads the longest shorter run that
decided: one that took STALLED_RUN or more (the floor only rises with T, as its maximum over more
steps), T + 1; one that converged sooner says nothing. Where it says nothing, quasi-Newton's counted
stall decides, else the law (model.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable

import numpy as np

from harness import registry
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights
from harness.predict.counted import COUNT_BATCH

# a run from the sequential states still above tol after this many iterations is stalled (a
# floor just under tol ends in 1-4: a trained SimpleRNN's took 24-233 where stalled)
STALLED_RUN = 8
# the floor runs' share of a prediction (< 5 s at H <= 256)
FLOOR_BUDGET_S = 1.0


@dataclasses.dataclass(frozen=True)
class Floor:
    batch: int
    runs: tuple  # backends' FloorRun: steps, iterations (None: not within run), run, stopped

    def count(self, steps: int) -> float | None:
        """The count rounding alone sets at T = steps (the solve takes at least it), or None."""
        at = {r.steps: r for r in self.runs}
        run = at.get(steps)
        if run is not None and run.iterations is not None:
            return float(run.iterations)
        if run is not None and _stalled(run):
            return steps + 1.0
        shorter = [r for r in self.runs if r.steps < steps and _decided(r)]
        if shorter and _stalled(shorter[-1]):
            return steps + 1.0
        return None


def _stalled(run) -> bool:
    """Still above tol after STALLED_RUN iterations, or converged only after them."""
    if run.iterations is not None:
        return run.iterations >= STALLED_RUN
    return run.stopped in ("deadline", "T + 1") and run.run >= STALLED_RUN


def _decided(run) -> bool:
    return run.iterations is not None or _stalled(run)


def newton_floor(
    spec: ModelSpec,
    weights: CanonicalWeights,
    x,
    tol: float,
    lengths: Iterable[int],
    iteration_s: Callable[[float], float],
    framework: str = "numpy",
    device: str = "cpu",
    budget_s: float = FLOOR_BUDGET_S,
) -> Floor | None:
    """Runs at the lengths whose STALLED_RUN iterations (at iteration_s(T) seconds each: the
    probed cost of layer 0's forward recurrence on the counting columns) fit budget_s, within
    budget_s in all (the sequential states and each run are cut at it), in the solve's
    framework; None where none fits. x time-major unless spec.batch_first."""
    fits = sorted(t for t in set(lengths) if STALLED_RUN * iteration_s(t) <= budget_s)
    if not fits:
        return None
    deadline = time.perf_counter() + budget_s
    dtype = np.dtype(spec.dtype)
    x = np.asarray(x, dtype)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    x = x[:, :COUNT_BATCH]
    xs = np.ascontiguousarray(np.concatenate([x] * math.ceil(fits[-1] / x.shape[0]))[: fits[-1]])
    params = {k: np.asarray(weights[k], dtype) for k in weights if not k.startswith("head")}
    plain = spec.replace(batch_first=False, head=None)
    runs = registry.parallel_in_time().floor_runs(
        plain, params, xs, fits, tol, deadline, framework, device, least=STALLED_RUN
    )
    return Floor(int(x.shape[1]), tuple(runs))
