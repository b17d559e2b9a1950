"""Quasi-Newton iterations counted on the model itself, at short lengths, before the solve runs.

The sweep's law reads the iterations from the largest Lyapunov exponent alone, which holds for
the sweep's random models: their counts stop growing past T ~ 64. A trained model's need not:
the quasi-Newton iteration keeps only the diagonal of each Jacobian, and where training has put
weight off the diagonal the count grows with T (a trained LSTM of H = 64, LLE -0.29: 56, 81,
112, 129 iterations at T = 64, 256, 1024, 4096, where the law says 23-27). So the prediction
solves the model for real at short lengths (`count_lengths`: at most half the longest T it
predicts, so a count is a probe, not the solve it predicts; in the model's own dtype, the first
COUNT_BATCH columns of its input, repeated in time where it is shorter), counts, and reads every
T from those counts (`Counted.extrapolate`), at most T + 1.

The model's dtype, not float64: in float32 the change between iterates can stall above tol on
rounding alone. The stall sets in at a length that depends on the input (the max over T of the
rounding noise passes tol), and past it a solve converges only as exactness propagates, about one
step an iteration: a trained SimpleRNN of H = 64, LLE -0.10, tol 1e-6, on six seeded inputs, takes
137-243 and 193-451 iterations at T = 256 and 512 in float32, 794-993 at T = 1024, where float64
takes 128-171, 147-175 and about as many. So where the model is not float64 the longest probe is
solved in float64 too, and a float32 count above STALL times float64's there (and by STALL_GAP
iterations a step of the probe) marks a stall (`Counted.stalled`): past the probes the prediction is
T + 1, for Newton too where its own check says nothing (its dense products round no better: that
model's Newton took 57 and 253 at T = 64 and 256, where the law says 11). Without a stall seen, two
readings: a count that grew about in proportion to T between the probes (exponent >= PROPORTIONAL,
and by GROWTH iterations a step or more: the diagonal says little about the Jacobian, as with an
orthogonal R, 253, 496, 976 at T = 256, 512, 1024 in either dtype) goes on as that power of T; any
other, linear in ln T, never decreasing. The float64 count and the stall are in the prediction's
record (CountedIterations.float64_iterations and .stalled) and printed by `parallel-in-time
--predict`; a solve's `iterations_from` says "counted" either way.

Newton's own rounding is measured apart (rounding_floor.py): where it decides, it decides
Newton, whatever quasi-Newton's counts say.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping

import numpy as np

from harness import registry
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights

COUNT_LENGTHS = (16, 32, 64, 128, 256, 512)
COUNT_BATCH = 4
METHOD = "quasi-newton"
# a count growing as T^p with p at least this between the probes, and by at least GROWTH
# iterations a step, grows so past them (small counts' exponents are their rounding)
PROPORTIONAL = 0.8
GROWTH = 0.25
# the model's dtype's count at the longest probe over float64's there that marks a stall, and
# by at least STALL_GAP iterations a step of the probe (a few iterations more are rounding near
# tol, not a stall)
STALL = 1.25
STALL_GAP = 0.05
# the counting solves' share of a prediction (< 5 s at H <= 256): a probe whose worst case
# (T + 1 iterations at the last probe's cost per step) would pass it is not run
COUNT_BUDGET_S = 2.5


@dataclasses.dataclass(frozen=True)
class Counted:
    """Iterations counted by solving the model at a few lengths; None where a solve did not
    converge within T + 1."""

    method: str
    batch: int
    counts: Mapping[int, int | None]
    # float64's count at the longest length, where the model is not float64 and it was afforded
    float64_count: int | None = None

    @property
    def compared(self) -> bool:
        """Both dtypes converged at the longest length: stalled or not, it says which."""
        longest = self.counts[max(self.counts)] if self.counts else None
        return longest is not None and self.float64_count is not None

    @property
    def stalled(self) -> bool:
        """Rounding stalled the change above tol at the longest length (see the module)."""
        length = max(self.counts) if self.counts else 0
        longest = self.counts[length] if self.counts else None
        if longest is None or self.float64_count is None:
            return False
        gap = longest - self.float64_count
        return longest > STALL * self.float64_count and gap >= STALL_GAP * length

    def iterations(self, method: str, steps: int) -> float | None:
        """The counted iterations of `method` at T = steps before the T + 1 cap (None: none
        counted): its own counts read on (extrapolate); another method's only under a stall,
        T + 1 (a stall rounds every method's change)."""
        if method == self.method:
            return self.extrapolate(steps)
        return steps + 1.0 if self.stalled else None

    def extrapolate(self, steps: int) -> float | None:
        """The iterations at T = steps read from the counts, before the T + 1 cap (None: a
        count failed): below the shortest length its count; else through the two lengths
        around T (the two longest beyond them), never below the shorter's count: as a power of
        T where the count grew as T^p with p >= PROPORTIONAL, and by GROWTH iterations a step,
        between them, else linear in ln T."""
        known = sorted(self.counts.items())
        if not known or any(k is None for _, k in known):
            return None
        lengths = [t for t, _ in known]
        ks = [float(k) for _, k in known if k is not None]
        if self.stalled and steps > lengths[-1]:
            return steps + 1.0
        if steps <= lengths[0] or len(known) == 1:
            return ks[0]
        i = next((j for j in range(1, len(lengths)) if steps <= lengths[j]), len(lengths) - 1)
        (t1, k1), (t2, k2) = (lengths[i - 1], ks[i - 1]), (lengths[i], ks[i])
        power = math.log(k2 / k1) / math.log(t2 / t1) if k1 > 0 and k2 > 0 else 0.0
        if power >= PROPORTIONAL and k2 - k1 >= GROWTH * (t2 - t1):
            return k1 * (steps / t1) ** power
        slope = max(0.0, (k2 - k1) / math.log(t2 / t1))
        return max(k1, k1 + slope * math.log(steps / t1))


def count_lengths(longest: int) -> tuple[int, ...]:
    """The three longest of COUNT_LENGTHS at most half the longest T predicted (T // 2 alone
    below them), shortest first: the first times the rest (COUNT_BUDGET_S), the two longest
    counted are kept."""
    fit = [t for t in COUNT_LENGTHS if t <= longest // 2]
    return tuple(fit[-3:]) if fit else (max(1, longest // 2),)


def count_iterations(
    spec: ModelSpec,
    weights: CanonicalWeights,
    x,
    tol: float,
    longest: int,
    method: str = METHOD,
    budget_s: float = COUNT_BUDGET_S,
    lengths: tuple[int, ...] | None = None,
) -> Counted:
    """Solve the model (in spec.dtype, no head) at `lengths` (default count_lengths(longest))
    on x (time-major unless spec.batch_first), shortest first, and count the iterations each
    took; keep the two longest counted; where spec.dtype is not float64, solve the longest in
    float64 too. A solve past the first whose worst case would pass budget_s is not run."""
    dtype = np.dtype(spec.dtype)
    x = np.asarray(x, dtype)
    if spec.batch_first:
        x = x.transpose(1, 0, 2)
    T = x.shape[0]
    x = x[:, :COUNT_BATCH]
    plain = spec.replace(batch_first=False, head=None)
    params = {k: np.asarray(weights[k], dtype) for k in weights if not k.startswith("head")}
    solver = registry.parallel_in_time()
    counts: dict[int, int | None] = {}
    started, per_step_iteration = time.perf_counter(), 0.0

    def count(spec: ModelSpec, length: int, cost: float = 1.0) -> int | None | bool:
        """The iterations at length (None: no convergence), or False: not afforded."""
        nonlocal per_step_iteration
        worst = cost * per_step_iteration * length * (length + 1)
        if per_step_iteration and time.perf_counter() - started + worst > budget_s:
            return False
        xs = np.concatenate([x] * math.ceil(length / T))[:length].astype(spec.dtype)
        arrays = {k: v.astype(spec.dtype, copy=False) for k, v in params.items()}
        begun = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = solver.solve_model(spec, arrays, xs, method, tol, length + 1)
        if not result.converged:  # it may have stopped early: its time says nothing
            return None
        per_step_iteration = (time.perf_counter() - begun) / cost / (result.iterations * length)
        return result.iterations

    for length in lengths or count_lengths(longest):
        found = count(plain, length)
        if found is False:
            break
        counts[length] = found
        if found is None:  # no count to read past a solve that did not converge
            break
    kept = {t: counts[t] for t in sorted(counts)[-2:]}
    reference = None
    if dtype != np.float64 and kept and kept[max(kept)] is not None:
        # float64 costs about twice as much an iteration
        found = count(plain.replace(dtype="float64"), max(kept), cost=2.0)
        reference = None if found is False else found
    return Counted(method, int(x.shape[1]), kept, reference)
