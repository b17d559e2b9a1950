"""The prediction itself, per method and sequence length T, from three things:

- iterations k: the sweep's law (harness/sweeps/iteration_law.py) at the model's largest
  Lyapunov exponent, T and tol; none where the law says it does not converge; quasi-Newton's
  read instead from the model's own counted solves at short lengths where there are some
  (counted.py), the exponent still deciding whether it converges at all; Newton's at least
  what rounding alone costs it, counted from the model's sequential states (rounding_floor.py),
  and where that says nothing but quasi-Newton's counts show rounding stalling the change
  above tol, T + 1 for Newton too;
- the work multiplier W: the solve's FLOPs over the step loop's at k iterations, over every layer
  and direction (harness/sweeps/parallel_in_time_work.py counts them);
- the machine's costs at the model's shape (probe.py): one iteration of one (layer, direction)
  tau(T), a solve of it stopped after one iteration F(T), and the step loop S(T).

The solve: L*D * (F(T) - tau(T) + k * tau(T)): each layer and direction set up (input
projection, buffers, outputs: F - tau) and iterated k times, the model's iteration count
(layer 0's exponent stands for all).
Its ratio to the step loop, solve / S(T), says "wins" below 1 and "loses" above. The break-even
T is where the first stretch of predicted wins starts, on a grid of quarter powers of 2 up to
MAX_STEPS, interpolated in log T between grid points; a stretch counts where it spans an octave
of T or runs to MAX_STEPS. It can end: where the count grows with T faster than the step loop's
lead (a count read on from short solves grows as ln T), the win holds over a window only, and
its end is recorded too (a case of T = 64 whose counts at 16 and 32 were 10 and 11 predicted a
win from 97 to 355, and under the old rule, wins held up to MAX_STEPS, none at all).
"""

from __future__ import annotations

import math
from typing import Protocol

from harness.model.flops import layer_inputs
from harness.model.spec import ModelSpec
from harness.predict.counted import Counted
from harness.predict.probe import Costs
from harness.predict.rounding_floor import Floor
from harness.records.prediction import PredictedSolve
from harness.sweeps import parallel_in_time_work as counts
from harness.sweeps.iteration_law import Law, Predicted, predict


class FirstIterateGrowth(Protocol):
    """backends/parallel_in_time/first_iterate.py's measure, as the predictor reads it."""

    def log_growth(self, mode: str, steps: int) -> float: ...

    def log_limit(self, dtype) -> float: ...


MAX_STEPS = 2**16
OCTAVE = 4  # grid points (quarter powers of 2) a winning stretch spans beyond its first


def _crossing(grid: list[float], ratios: list[float | None], i: int) -> float:
    """Where the log ratio crosses 0 between grid[i] and grid[i + 1], interpolated in log T;
    the later point where either side does not converge."""
    low, high = ratios[i], ratios[i + 1]
    if low is None or high is None:
        return grid[i + 1]
    share = math.log(low) / (math.log(low) - math.log(high))
    return 2 ** (math.log2(grid[i]) + share * 0.25)


def model_work(spec: ModelSpec, batch: int, steps: int, method: str, iterations: int) -> float:
    """The work multiplier of the whole model (each layer solved with `iterations`)."""
    D, cell, H = spec.num_directions, spec.cell.value, spec.hidden_size
    sequential = total = 0.0
    for size in layer_inputs(spec.input_size, H, spec.num_layers, D):
        sequential += D * counts.sequential_flops(cell, batch, steps, size, H)
        total += D * counts.projection_flops(cell, batch, steps, size, H)
        total += D * iterations * counts.iteration_flops(method, cell, batch, steps, H)
    return total / sequential


def _counted(k: float, steps: int, limit: int, source: str):
    count = math.ceil(min(steps + 1.0, k) - 1e-9)
    if count > limit:
        reason = f"{count} iterations ({source}, at T={steps}) > max_iter {limit}"
        return Predicted(None, k, reason), source
    return Predicted(count, k, None), source


class Predictor:
    """The prediction of one model at batch B on one machine (its probed costs), for any T."""

    def __init__(
        self,
        spec: ModelSpec,
        batch: int,
        lle: float | None,
        laws,
        costs: Costs,
        counted: Counted | None = None,
        floor: Floor | None = None,
        growth: FirstIterateGrowth | None = None,
    ):
        self.spec, self.batch, self.lle, self.laws, self.costs = spec, batch, lle, laws, costs
        self.counted, self.floor, self.growth = counted, floor, growth

    def overflow(self, method: str, steps: int) -> str | None:
        """Why the first iterate is predicted to pass the dtype's range at T = steps, or None."""
        if self.growth is None:
            return None
        mode = "dense" if method == "newton" else "diagonal"
        grown, limit = self.growth.log_growth(mode, steps), self.growth.log_limit(self.spec.dtype)
        if grown <= limit:
            return None
        return (
            f"a non-finite value at iteration 1: at s = 0 the {mode} Jacobians' products grow "
            f"by e^{grown:.0f} within T={steps}, past {self.spec.dtype}'s largest value "
            f"(e^{limit:.1f})"
        )

    def iterations(self, method: str, steps: int, tol: float, max_iter: int | None):
        """(the predicted count, "law", "counted", "rounding floor" or "first iterate")."""
        limit = max_iter or steps + 1
        found = predict(self.law(method), self.lle, steps, tol, limit)
        if self.lle is None or self.lle >= 0:  # the exponent's reason comes first
            return found, "law"
        overflow = self.overflow(method, steps)
        if overflow is not None:
            return Predicted(None, math.inf, overflow), "first iterate"
        floor = None if self.floor is None or method != "newton" else self.floor.count(steps)
        if floor is not None:  # it decides Newton, whatever quasi-Newton's counts say
            if found.iterations is None or floor <= found.iterations:
                return found, "law"
            return _counted(floor, steps, limit, "rounding floor")
        if self.counted is None:
            return found, "law"
        k = self.counted.iterations(method, steps)
        if k is None:
            return found, "law"
        return _counted(k, steps, limit, "counted")

    def iteration_s(self, method: str, steps: float) -> float:
        spec, cell, B = self.spec, self.spec.cell.value, self.batch

        def flops(T: float) -> float:
            return counts.iteration_flops(method, cell, B, max(1, round(T)), spec.hidden_size)

        one = self.costs.curves[method].at(steps, flops)
        return spec.num_layers * spec.num_directions * one

    def setup_s(self, method: str, steps: float) -> float:
        """Once per solve: F(T) - tau(T) for every (layer, direction), held >= 0."""
        spec, cell, B = self.spec, self.spec.cell.value, self.batch

        def flops(T: float) -> float:
            return counts.iteration_flops(method, cell, B, max(1, round(T)), spec.hidden_size)

        first = self.costs.curves[f"{method} first"].at(steps, flops)
        one = self.costs.curves[method].at(steps, flops)
        return spec.num_layers * spec.num_directions * max(0.0, first - one)

    def step_loop_s(self, steps: float) -> float:
        return self.costs.curves["loop"].at(steps)

    def law(self, method: str) -> Law:
        return self.laws[(self.spec.cell.value, method)]

    def ratio(self, method: str, steps: float, tol: float, max_iter: int | None) -> float | None:
        T = max(1, round(steps))
        found, _ = self.iterations(method, T, tol, max_iter)
        if found.iterations is None:
            return None
        solve = self.setup_s(method, steps) + found.iterations * self.iteration_s(method, steps)
        return solve / self.step_loop_s(steps)

    def break_even(
        self, method: str, tol: float, max_iter: int | None
    ) -> tuple[float | None, float | None]:
        """(where the first winning stretch on the grid starts, where it ends): a stretch of
        predicted ratios under 1 that spans an octave of T or runs to MAX_STEPS (a shorter one
        is a dip, not a win); (None, None) where none does; the end None where it runs on."""
        grid = [2 ** (j / 4) for j in range(8, 4 * int(math.log2(MAX_STEPS)) + 1)]
        ratios = [self.ratio(method, T, tol, max_iter) for T in grid]
        winning = [r is not None and r < 1 for r in ratios]
        last = len(grid) - 1
        first = 0
        while first <= last:
            if not winning[first]:
                first += 1
                continue
            end = first
            while end < last and winning[end + 1]:
                end += 1
            if end - first >= OCTAVE or end == last:
                start = grid[0] if first == 0 else _crossing(grid, ratios, first - 1)
                return start, (None if end == last else _crossing(grid, ratios, end))
            first = end + 1
        return None, None

    def solve(self, method: str, steps: int, tol: float, max_iter: int | None) -> PredictedSolve:
        found, source = self.iterations(method, steps, tol, max_iter)
        iteration_s, setup_s = self.iteration_s(method, steps), self.setup_s(method, steps)
        step_loop_s = self.step_loop_s(steps)
        work = solve_s = ratio = None
        if found.iterations is not None:
            work = model_work(self.spec, self.batch, steps, method, found.iterations)
            solve_s = setup_s + found.iterations * iteration_s
            ratio = solve_s / step_loop_s
        verdict = "does not converge" if ratio is None else ("wins" if ratio < 1 else "loses")
        unbounded = found.unbounded if math.isfinite(found.unbounded) else None
        break_even, wins_up_to = self.break_even(method, tol, max_iter)
        return PredictedSolve(
            method=method,
            steps=steps,
            iterations=found.iterations,
            iterations_unbounded=unbounded,
            iterations_from=source,
            reason=found.reason,
            work_multiplier=work,
            iteration_s=iteration_s,
            setup_s=setup_s,
            solve_s=solve_s,
            step_loop_s=step_loop_s,
            ratio=ratio,
            verdict=verdict,
            break_even_steps=break_even,
            wins_up_to_steps=wins_up_to,
        )
