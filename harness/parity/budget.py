"""The error budget of a recurrent model's outputs, grown with the step and with the model's own
error amplification.

Each step of a float32 run rounds at float32's epsilon; the recurrence carries each rounding
forward, multiplied by the model's local growth, so the error at step t is about
delta * A(t), A(t) = sum_{k<t} exp(lambda k), with lambda the model's largest Lyapunov exponent
(per step, natural log): A saturates at 1 / (1 - exp(lambda)) for a contracting model, grows
like t at lambda = 0 and exponentially for an expanding (chaotic) one. delta, the rounding a
step adds, is measured once per model: the NumPy reference run in float32 beside float64 on the
check's long sequence, delta = max_t error(t) / A(t). The budget at step t is
SAFETY * delta * A(t), never below the plain tolerance of harness/parity/checks.py: a
contracting model keeps the plain tolerance at any length, and an honest export of an
expanding model passes with a budget that says how far it grew. Where the budget passes the
output's own range, the steps from there on are in effect unchecked: float32 and float64 runs
of a chaotic model legitimately part there, and the budget says from which step."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MARGIN = 0.01  # added to the estimated exponent: a finite-time estimate scatters
SAFETY = 10.0  # an export's rounding against the reference's own float32 run: other orders
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}
ATOL = {"float32": 1e-5, "float64": 1e-12}  # harness/parity/checks.py's, per max(1, |ref|)


def growth(rate: float, steps) -> np.ndarray:
    """A(steps) = sum_{k < steps} exp(rate k), for each count of steps (at least 1)."""
    steps = np.maximum(np.asarray(steps, np.float64), 1.0)
    if abs(rate) < 1e-9:
        return steps
    with np.errstate(over="ignore"):
        return np.expm1(np.minimum(rate * steps, 700.0)) / math.expm1(rate)


@dataclasses.dataclass(frozen=True)
class ErrorBudget:
    lle: float  # the model's largest Lyapunov exponent, per step, as estimated
    rounding: float = 0.0  # delta: one step's rounding in float32, relative to max(1, |ref|)
    how: str = ""  # how it was estimated, or why it was not
    dtype: str = "float32"  # the dtype the budget is for

    def for_dtype(self, dtype: str) -> ErrorBudget:
        """The same model's budget in another dtype: rounding scales with its epsilon."""
        if dtype == self.dtype:
            return self
        scaled = self.rounding * EPS[dtype] / EPS[self.dtype]
        return dataclasses.replace(self, rounding=scaled, dtype=dtype)

    def factor(self, steps) -> np.ndarray:
        """atol's multiplier at each count of steps (array-like): at least 1."""
        grown = SAFETY * self.rounding * growth(self.lle + MARGIN, steps) / ATOL[self.dtype]
        return np.maximum(1.0, grown)

    def describe(self, steps: int) -> str:
        grown = float(self.factor(steps))
        where = f"LLE {self.lle:+.3f}/step{', ' + self.how if self.how else ''}"
        if grown <= 1.0:
            return f"plain tolerance at T={steps} ({where})"
        text = f"tolerance x{grown:.3g} at T={steps} ({where})"
        beyond = self.unchecked_from(steps)
        if beyond is not None:
            text += (
                f"; from step {beyond} the budget passes the outputs' range (2 x max(1, |ref|)): "
                "float32 and float64 part there, those steps are in effect unchecked"
            )
        return text

    def unchecked_from(self, steps: int) -> int | None:
        """The first step (1-based) whose budget passes twice the outputs' scale, or None."""
        factors = self.factor(np.arange(1, steps + 1))
        beyond = np.flatnonzero(factors * ATOL[self.dtype] > 2.0)
        return int(beyond[0]) + 1 if beyond.size else None


PLAIN = ErrorBudget(-math.inf, 0.0, "the plain tolerance")


def model_budget(spec, weights, x) -> ErrorBudget:
    """The budget of a model of `spec` and canonical `weights` on time-major x [T, B, I]: its
    largest exponent over every layer and direction (a stack's exponents are its layers'),
    estimated along x, and the rounding one step adds, from the reference's own float32 run on
    x. A model the estimator cannot take (a variant) grows linearly (lambda 0) and says why."""
    from harness import registry
    from harness.model.protocol import NotSupported

    spec64 = spec.replace(batch_first=False, dtype="float64")
    params = dict(weights.astype("float64"))
    try:
        solver = registry.parallel_in_time()
        exponents = [
            solver.model_lyapunov(spec64, params, x, layer=layer, direction=d).lle
            for layer in range(spec.num_layers)
            for d in range(spec.num_directions)
        ]
        finite = [e for e in exponents if math.isfinite(e)]
        lle, how = max(finite), f"estimated over T={np.shape(x)[0]}"
    except (NotSupported, ModuleNotFoundError, ValueError) as exc:
        lle, how = 0.0, f"not estimated ({str(exc)[:80]}): linear growth assumed"
    rounding = _rounding(spec64, params, x, lle + MARGIN)
    budget = ErrorBudget(lle, rounding, how)
    return budget.for_dtype(spec.dtype) if spec.dtype in EPS else budget


def _rounding(spec64, params, x, rate: float) -> float:
    """max_t error(t) / (A(t) max(1, |ref|)) of the reference in float32 against float64, over
    the forward direction's outputs (a backward direction's error grows from the end)."""
    from harness import registry

    oracle = registry.reference()
    exact = oracle.forward(spec64, params, np.asarray(x, np.float64)).y
    spec32 = spec64.replace(dtype="float32")
    params32 = {k: np.asarray(v, np.float32) for k, v in params.items()}
    rounded = oracle.forward(spec32, params32, np.asarray(x, np.float32)).y
    H = spec64.hidden_size
    error = np.abs(np.asarray(rounded, np.float64) - exact)[..., :H]
    per_step = error.reshape(error.shape[0], -1).max(axis=1)
    scale = max(1.0, float(np.abs(exact).max(initial=0.0)))
    return float((per_step / (growth(rate, np.arange(1, len(per_step) + 1)) * scale)).max())


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
