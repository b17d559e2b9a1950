"""The machine's costs at the model's shape, timed in a few seconds: one iteration of each
method's solver and a whole solve stopped after one iteration (its setup: input projection,
buffers, outputs; backends/parallel_in_time/iteration_probe.py), and the step loop the solve
replaces (the backend's own forward, as `bench` times it), each at a few sequence lengths:
at each length each curve alone (its warm-up and rounds back to back, as bench times a case:
between the solver's calls a step loop of 95 us read 142 us), the fastest of REPEATS timed
calls (fewer for a call that would pass BUDGET_S, one at least). A length is probed only while
its estimated cost (the previous length's time scaled by the work), a warm-up and one timed
call, stays within BUDGET_S, and every length within TOTAL_S; longer ones are extrapolated
(costs.CostCurve). A time well above the line through its neighbours is timed again (BUMP),
within RETIME_S more.
Run it at the thread count the solve will run at, with nothing else of the same run busy (bench
makes it at a case's calibration)."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness import registry
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights
from harness.predict.costs import CostCurve
from harness.predict.errors import CannotPredict
from harness.sweeps import parallel_in_time_work as counts

LENGTHS = (4, 16, 64, 256, 1024, 4096)
REPEATS = 5
# calls (iterations, step loops, one-iteration solves) a timed call runs back to back at the
# first length: a solve runs its iterations so, its arrays warm in cache after the first, and
# one cold iteration alone overstates each (by 3-8x at T=256, H=32 with the fused kernel, where
# an iteration takes ~20 us); the curve holds the mean
ITERATIONS_PER_CALL = 4
# past the first length, a call estimated at this or longer runs alone in a timed call: its
# arrays are past the caches anyway (one and four a call agree within 3% for the trained LSTM's
# dense Newton, H = 64, at T = 64 to 1024), and four of them kept the longer lengths from being
# probed at all (its iteration at T = 1024 read 56 ms on from T = 64, 134 ms measured); a
# shorter one is repeated to span it, at most MOST_PER_CALL times
ALONE_S = 1e-3
MOST_PER_CALL = 64
BUDGET_S = 0.3  # one probed length of one curve: its warm-up call and its repeats
TOTAL_S = 2.5  # every curve at every length: no length starts that would run past it
# a time this far above the line through its neighbours (in work) is timed again, the faster
# kept: a curve's cost per unit of work falls (fixed costs) or rises (caches) smoothly, and a
# burst of load on a shared machine slows one length of one curve (one probe read a break-even
# of 158 where two before it read 69); at most RETIMES a probe, within RETIME_S in all (beyond
# TOTAL_S: the prediction stays under 5 s)
BUMP = 1.25
RETIMES = 3
RETIME_S = 0.5
# the solver's framework for each backend the engine runs newton / quasi-newton on
FRAMEWORKS = {
    "torch-cpu": ("torch", "cpu"),
    "torch-cuda": ("torch", "cuda"),
    "numpy": ("numpy", "cpu"),
}


@dataclasses.dataclass(frozen=True)
class Costs:
    """Per-call seconds curves: "loop" (the step loop, whole model), each method's one
    iteration of one (layer, direction) ("newton", "quasi-newton") and a one-iteration solve
    of layer 0's forward recurrence ("newton first", "quasi-newton first")."""

    backend: str
    curves: dict[str, CostCurve]
    seconds: float  # what probing took

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(sorted({t for c in self.curves.values() for t in c.lengths}))


def lengths_for(steps: int) -> tuple[int, ...]:
    return tuple(sorted({*LENGTHS, steps}))


def _work(method: str, cell: str, batch: int, hidden: int, steps: float) -> float:
    """One iteration's FLOPs at T = steps: how a probed time scales to the next length."""
    return counts.iteration_flops(method, cell, batch, int(steps), hidden)


def _call(make, spec, weights, method: str, batch: int, backend: str, steps: int, **options):
    """make's call (the solver's iterations, or its one-iteration solve) at T = steps."""
    framework, device = FRAMEWORKS[backend]
    return make(spec, weights, method, batch, steps, framework, device, **options)


def probe(
    spec: ModelSpec,
    weights: CanonicalWeights,
    batch: int,
    steps: int,
    backend: str,
    methods: tuple[str, ...] = counts.METHODS,
) -> Costs:
    """The curves at lengths_for(steps), each timed alone at each length; a curve stops at the
    first length whose estimated warm-up and one timed call would exceed the budget."""
    if backend not in FRAMEWORKS:
        raise CannotPredict(
            f"no probe of {backend}'s solver: the prediction probes {', '.join(FRAMEWORKS)}"
        )
    started = time.perf_counter()
    pt = registry.parallel_in_time()
    cell, hidden = spec.cell.value, spec.hidden_size
    loop = _loop_call(spec, weights, batch, backend)
    # name -> ((T, calls back to back in one timed call) -> the call, T -> its work): a
    # method's iteration runs its iterations so itself, the rest are repeated (_once)
    builders: dict[str, tuple[Callable[[int, int], Any], Callable[[float], float]]]
    builders = {"loop": (_once(loop), float)}
    for method in methods:
        scale = functools.partial(_work, method, cell, batch, hidden)
        each = functools.partial(_call, pt.iteration_call, spec, weights, method, batch, backend)
        builders[method] = (_iterated(each), scale)
        first = functools.partial(_call, pt.first_solve_call, spec, weights, method, batch, backend)
        builders[f"{method} first"] = (_once(first), scale)
    lengths: dict[str, list[int]] = {name: [] for name in builders}
    seconds: dict[str, list[float]] = {name: [] for name in builders}
    calls_at: dict[str, list[int]] = {name: [] for name in builders}  # calls a timed call ran
    stopped: set[str] = set()
    for T in lengths_for(steps):
        estimates, per_call = {}, {}
        for name, (_, work) in builders.items():
            if name in stopped:
                continue
            one = None
            if seconds[name]:  # one iteration (or call) at T, scaled from the last length
                one = seconds[name][-1] * work(T) / work(lengths[name][-1])
            per_call[name] = _per_call(one)
            if one is None:
                continue
            estimates[name] = one * per_call[name]
            if estimates[name] * 2 > BUDGET_S:  # its warm-up and one timed call
                stopped.add(name)
        later = sum(_rounds_s(v) for k, v in estimates.items() if k not in stopped)
        if lengths["loop"] and time.perf_counter() - started + later > TOTAL_S:
            break  # the lengths probed so far carry the rest
        calls = {
            name: build(T, per_call[name])
            for name, (build, _) in builders.items()
            if name not in stopped
        }
        if not calls:
            break
        for name, value in _each_alone(pt, calls).items():
            lengths[name].append(T)
            seconds[name].append(value / per_call[name])
            calls_at[name].append(per_call[name])
    retiming, retimed = 0.0, set[tuple[str, int]]()
    while len(retimed) < RETIMES:  # the furthest first, then read again (a bump bends its
        # neighbours' lines too)
        bumps = [b for b in _bumps(builders, lengths, seconds) if b not in retimed]
        if not bumps:
            break
        name, index = bumps[0]
        retimed.add(bumps[0])
        build, _ = builders[name]
        T, times = lengths[name][index], calls_at[name][index]
        retiming += _rounds_s(seconds[name][index] * times)
        if retiming > RETIME_S:
            break
        again = _each_alone(pt, {name: build(T, times)})[name] / times
        seconds[name][index] = min(seconds[name][index], again)
    curves = {name: CostCurve(tuple(lengths[name]), tuple(seconds[name])) for name in builders}
    return Costs(backend, curves, time.perf_counter() - started)


def _bumps(builders, lengths, seconds) -> list[tuple[str, int]]:
    """(curve, index) of each time more than BUMP over the line through its two nearest other
    lengths (its neighbours; at an end, the next two, extrapolated), in the work: the interior
    ones first, then the ends (a cache level left at the last length lies above the line too:
    timed again, it keeps its time), each the furthest above first; a curve of fewer than three
    lengths has none."""
    found = []
    for name, (_, work) in builders.items():
        T, s = lengths[name], seconds[name]
        for i in range(len(T) if len(T) >= 3 else 0):
            a, b = (i - 1, i + 1) if 0 < i < len(T) - 1 else ((1, 2) if i == 0 else (i - 2, i - 1))
            wa, w, wb = work(T[a]), work(T[i]), work(T[b])
            line = s[a] + (s[b] - s[a]) * (w - wa) / (wb - wa)
            if line > 0 and s[i] > BUMP * line:
                found.append((0 < i < len(T) - 1, s[i] / line, name, i))
    return [(name, i) for _, _, name, i in sorted(found, reverse=True)]


def _each_alone(pt, calls: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Each curve's fastest seconds, its warm-up and rounds back to back (fastest_seconds
    given one call at a time)."""
    return {
        name: pt.fastest_seconds({name: call}, REPEATS, BUDGET_S)[name]
        for name, call in calls.items()
    }


def _per_call(one: float | None) -> int:
    """How many of a call (an iteration, a step loop, a solve) one timed call runs back to
    back: ITERATIONS_PER_CALL at the first length; past it enough to span ALONE_S, at most
    MOST_PER_CALL; one where a call alone spans it."""
    if one is None:
        return ITERATIONS_PER_CALL
    if one >= ALONE_S:
        return 1
    return min(MOST_PER_CALL, max(ITERATIONS_PER_CALL, math.ceil(ALONE_S / one)))


def _once(make: Callable[[int], Any]) -> Callable[[int, int], Any]:
    """A call of make(T) run `times` times back to back, as bench times a call."""

    def build(T: int, times: int) -> Any:
        call = make(T)
        if times == 1:
            return call

        def repeated() -> None:
            for _ in range(times):
                call()

        return repeated

    return build


def _iterated(make: Callable[..., Any]) -> Callable[[int, int], Any]:
    def build(T: int, iterations: int) -> Any:
        return make(T, iterations=iterations)

    return build


def _rounds_s(call_s: float) -> float:
    """What fastest_seconds spends on a call of call_s: its warm-up and its rounds."""
    return call_s * (1 + max(1, min(REPEATS, BUDGET_S // max(call_s, 1e-9))))


def _loop_call(spec: ModelSpec, weights: CanonicalWeights, batch: int, backend: str):
    """T -> one call of the backend's forward (the step loop) on seeded inputs."""
    prepared = registry.get_backend(backend).build(spec, weights)
    rng = np.random.default_rng(0)

    def build(T: int):
        x = rng.standard_normal((int(T), batch, spec.input_size)).astype(spec.dtype)
        if spec.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        run, _ = prepared.forward_runner(x)
        return run

    return build
