"""Quasi-Newton iterations counted on the model itself, at short lengths, before the solve runs.

The sweep's law reads the iterations from the largest Lyapunov exponent alone, which holds for
the sweep's random models: their counts stop growing past T ~ 64. A trained model's need not:
the quasi-Newton iteration keeps only the diagonal of each Jacobian, and where training has put
weight off the diagonal the count grows with T (a trained LSTM of H = 64, LLE -0.29: 56, 81,
112, 129 iterations at T = 64, 256, 1024, 4096, where the law says 23-27). So the prediction
solves the model for real at short lengths (`count_lengths`: at most half the longest T it
predicts, so a count is a probe, not the solve it predicts; float64, the first COUNT_BATCH
columns of its input, repeated in time where it is shorter), counts, and reads every T from
those counts (`Counted.extrapolate`): linear in ln T, never decreasing, at most T + 1.
Newton's count is the law's: it follows the exponent, and a dense Newton solve would cost more
than the whole prediction may.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from harness import registry
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights

COUNT_LENGTHS = (16, 32, 64, 128, 256)
COUNT_BATCH = 4
METHOD = "quasi-newton"


@dataclasses.dataclass(frozen=True)
class Counted:
    """Iterations counted by solving the model at a few lengths; None where a solve did not
    converge within T + 1."""

    method: str
    batch: int
    counts: Mapping[int, int | None]

    def extrapolate(self, steps: int) -> float | None:
        """The iterations at T = steps read from the counts, before the T + 1 cap (None: a
        count failed): below the shortest length its count; else linear in ln T through the
        two lengths around T (the two longest beyond them), never below the shorter's count."""
        known = sorted(self.counts.items())
        if not known or any(k is None for _, k in known):
            return None
        lengths = [t for t, _ in known]
        ks = [float(k) for _, k in known if k is not None]
        if steps <= lengths[0] or len(known) == 1:
            return ks[0]
        i = next((j for j in range(1, len(lengths)) if steps <= lengths[j]), len(lengths) - 1)
        (t1, k1), (t2, k2) = (lengths[i - 1], ks[i - 1]), (lengths[i], ks[i])
        slope = max(0.0, (k2 - k1) / math.log(t2 / t1))
        return max(k1, k1 + slope * math.log(steps / t1))


def count_lengths(longest: int) -> tuple[int, ...]:
    """The two longest of COUNT_LENGTHS at most half the longest T predicted (T // 2 alone
    below them)."""
    fit = [t for t in COUNT_LENGTHS if t <= longest // 2]
    return tuple(fit[-2:]) if fit else (max(1, longest // 2),)


def count_iterations(
    spec: ModelSpec, weights: CanonicalWeights, x, tol: float, longest: int, method: str = METHOD
) -> Counted:
    """Solve the model (float64, no head) at count_lengths(longest) on x (time-major unless
    spec.batch_first) and count the iterations each took."""
    x = np.asarray(x, np.float64)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    T = x.shape[0]
    x = x[:, :COUNT_BATCH]
    spec64 = spec.replace(dtype="float64", batch_first=False, head=None)
    params = {k: np.asarray(weights[k], np.float64) for k in weights if not k.startswith("head")}
    solver = registry.parallel_in_time()
    counts: dict[int, int | None] = {}
    for length in count_lengths(longest):
        xs = np.concatenate([x] * math.ceil(length / T))[:length]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = solver.solve_model(spec64, params, xs, method, tol, length + 1)
        counts[length] = result.iterations if result.converged else None
    return Counted(method, int(x.shape[1]), counts)
