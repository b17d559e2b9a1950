"""A solve timed against the step loop it replaces, in one process: `rnnbench parallel-in-time`'s
own measurement, from which its one-line verdict comes. Rounds are interleaved (one solve, then
one step loop, each round), so the ratio pairs by round as the engine's interleaved groups do;
its 95% interval decides the verdict (verdict.py). A microbenchmark next to `bench`: no worker
per case, no machine lock."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness import registry, stats
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights
from harness.predict.errors import CannotPredict
from harness.predict.verdict import measured_verdict

ROUNDS = 7
LEAST_ROUNDS = 3
BUDGET_S = 20.0  # past it, no round more than LEAST_ROUNDS
BACKENDS = {
    ("torch", "cpu"): "torch-cpu",
    ("torch", "cuda"): "torch-cuda",
    ("numpy", "cpu"): "numpy",
    ("numpy", "cuda"): "cupy",
}


def step_loop_backend(framework: str, device: str) -> str:
    """The backend whose step loop the solve on (framework, device) replaces."""
    return BACKENDS[(framework, device)]


def loop_runner(spec: ModelSpec, weights: Mapping[str, Any], x, backend: str) -> Callable[[], Any]:
    """One forward of the backend's step loop over the recurrence (no head: the solve has
    none) on x [T, B, I]."""
    spec = spec.replace(head=None, batch_first=False)
    arrays = {k: np.asarray(v) for k, v in weights.items() if not k.startswith("head")}
    made = registry.get_backend(backend)
    reason = made.unavailable_reason()
    if reason:
        raise CannotPredict(f"no step loop to time against: {backend}: {reason}")
    prepared = made.build(spec, CanonicalWeights(spec, arrays))
    run, _ = prepared.forward_runner(np.ascontiguousarray(x, dtype=spec.dtype))
    return run


def time_against_loop(
    solve: Callable[[], Any],
    loop: Callable[[], Any],
    rounds: int = ROUNDS,
    budget_s: float = BUDGET_S,
) -> dict[str, Any]:
    """Seconds of each, round by round, their medians' and the paired ratio's intervals, and
    the verdict; one warm-up call each first."""
    solve(), loop()
    solves: list[float] = []
    loops: list[float] = []
    started = time.perf_counter()
    while len(solves) < rounds:
        if len(solves) >= LEAST_ROUNDS and time.perf_counter() - started > budget_s:
            break
        for call, samples in ((solve, solves), (loop, loops)):
            begin = time.perf_counter()
            call()
            samples.append(time.perf_counter() - begin)
    ratio = stats.ratio_ci(solves, loops, paired=True)
    return {
        "rounds": len(solves),
        "solve_s": solves,
        "step_loop_s": loops,
        "solve_ci": list(stats.median_ci(solves)),
        "step_loop_ci": list(stats.median_ci(loops)),
        "ratio_ci": list(ratio),
        "verdict": measured_verdict(ratio),
    }
