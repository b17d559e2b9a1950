"""The error budget of a recurrent model's outputs, grown with the step and with the model's own
error amplification.

Each step of a float32 run rounds at float32's epsilon; the recurrence carries each rounding
forward, multiplied by the model's local growth, so the error at step t is about
eps * A(t), A(t) = sum_{k<t} exp(lambda k), with lambda the model's largest Lyapunov exponent
(per step, natural log): A saturates at 1 / (1 - exp(lambda)) for a contracting model, grows
like t at lambda = 0 and exponentially for an expanding (chaotic) one. The tolerances of
harness/parity/checks.py were set for the parity matrix's T = 20 at lambda <= 0, so their atol
is scaled by max(1, A(t) / A_20) at step t: a contracting model keeps the plain tolerance at any
length, and an honest export of an expanding model passes with a budget that says how far it
grew. Where the budget passes the output's own range (a tanh state cannot differ by more than 2),
the steps from there on are said to be unchecked: float32 and float64 runs of a chaotic model
legitimately part there."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

CALIBRATED_STEPS = 20  # the parity matrix's T: the plain tolerance covers A(20) at lambda 0
MARGIN = 0.02  # added to the estimated exponent: a finite-time estimate scatters


@dataclasses.dataclass(frozen=True)
class ErrorBudget:
    lle: float  # the model's largest Lyapunov exponent, per step, as estimated
    how: str = ""  # how it was estimated, or why it was not

    def factor(self, steps) -> np.ndarray:
        """max(1, A(steps) / A(CALIBRATED_STEPS)) for each count of steps (array-like)."""
        steps = np.maximum(np.asarray(steps, np.float64), 1.0)
        rate = self.lle + MARGIN
        if abs(rate) < 1e-9:
            growth = steps
            calibrated = float(CALIBRATED_STEPS)
        else:
            with np.errstate(over="ignore"):
                growth = np.expm1(np.minimum(rate * steps, 700.0)) / math.expm1(rate)
            calibrated = math.expm1(rate * CALIBRATED_STEPS) / math.expm1(rate)
        return np.maximum(1.0, growth / calibrated)

    def describe(self, steps: int) -> str:
        grown = float(self.factor(steps))
        where = f"LLE {self.lle:+.3f}/step{', ' + self.how if self.how else ''}"
        if grown <= 1.0:
            return f"plain tolerance at T={steps} ({where})"
        return f"tolerance x{grown:.3g} at T={steps} ({where})"


PLAIN = ErrorBudget(-math.inf, "the plain tolerance")


def model_budget(spec, weights, x) -> ErrorBudget:
    """The budget of a model of `spec` and canonical `weights` on time-major x [T, B, I]: its
    largest exponent over every layer and direction (a stack's exponents are its layers'),
    estimated along x. A model the estimator cannot take (a variant) grows linearly (lambda 0)
    and says why."""
    from harness import registry
    from harness.model.protocol import NotSupported

    try:
        solver = registry.parallel_in_time()
        spec = spec.replace(batch_first=False, dtype="float64")
        params = dict(weights.astype("float64"))
        exponents = [
            solver.model_lyapunov(spec, params, x, layer=layer, direction=d).lle
            for layer in range(spec.num_layers)
            for d in range(spec.num_directions)
        ]
    except (NotSupported, ModuleNotFoundError) as exc:
        return ErrorBudget(0.0, f"not estimated ({str(exc)[:80]}): linear growth assumed")
    finite = [e for e in exponents if math.isfinite(e)]
    if not finite:
        return ErrorBudget(0.0, "not estimated (no finite exponent): linear growth assumed")
    return ErrorBudget(max(finite), f"estimated over T={np.shape(x)[0]}")


def step_scale(budget: ErrorBudget, shape, time_axis: int | None, steps: int) -> np.ndarray:
    """The atol multiplier of each element of an output of `shape`: the factor at its own step
    (1-based) along `time_axis`, or at the last step for an output without one."""
    if time_axis is None:
        return np.full(shape, float(budget.factor(steps)))
    length = shape[time_axis]
    factors = budget.factor(np.arange(1, length + 1))
    view = [1] * len(shape)
    view[time_axis] = length
    return np.broadcast_to(factors.reshape(view), shape)


def per_step(diff: np.ndarray, limit: np.ndarray, time_axis: int) -> tuple[list[float], int | None]:
    """(the largest error at each step, the first step, 0-based, where some element passes its
    limit, or None)."""
    moved = np.moveaxis(diff, time_axis, 0).reshape(diff.shape[time_axis], -1)
    over = np.moveaxis(diff > limit, time_axis, 0).reshape(moved.shape)
    errors = [float(f"{v:.3g}") for v in moved.max(axis=1, initial=0.0)]
    steps = np.flatnonzero(over.any(axis=1))
    return errors, (int(steps[0]) if steps.size else None)


def unchecked_from(budget: ErrorBudget, atol: float, reach: float, steps: int) -> int | None:
    """The first step (1-based) whose budget exceeds `reach` (the largest difference the output
    can show, e.g. twice its largest magnitude), or None when every step up to `steps` is
    checked."""
    factors = budget.factor(np.arange(1, steps + 1))
    beyond = np.flatnonzero(atol * factors > reach)
    return int(beyond[0]) + 1 if beyond.size else None
