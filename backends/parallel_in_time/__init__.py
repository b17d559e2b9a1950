"""Parallel-in-time evaluation of the recurrences by Newton's method over the whole sequence
(DEER / quasi-DEER), the Lyapunov exponents that decide how fast it converges, and gradients
through the solution. See newton.py for the method, runner.py for what the benchmark times."""

from __future__ import annotations

from backends.parallel_in_time.adjoint import model_gradients
from backends.parallel_in_time.first_iterate import FirstIterateGrowth, first_iterate_growth
from backends.parallel_in_time.iteration_probe import (
    fastest_seconds,
    first_solve_call,
    iteration_call,
)
from backends.parallel_in_time.lyapunov import LyapunovEstimate, lyapunov_spectrum, model_lyapunov
from backends.parallel_in_time.newton import METHODS, ParallelResult, SolveRecord, solve_model
from backends.parallel_in_time.quasi_solvers import describe as describe_iteration
from backends.parallel_in_time.reference import sequential_reference
from backends.parallel_in_time.rounding_floor import FloorRun, floor_runs
from backends.parallel_in_time.runner import FRAMEWORKS, fetch, make_runner
from backends.parallel_in_time.tangent import largest_lyapunov

__all__ = [
    "FRAMEWORKS",
    "FirstIterateGrowth",
    "FloorRun",
    "METHODS",
    "LyapunovEstimate",
    "ParallelResult",
    "SolveRecord",
    "describe_iteration",
    "fetch",
    "first_iterate_growth",
    "floor_runs",
    "fastest_seconds",
    "first_solve_call",
    "iteration_call",
    "largest_lyapunov",
    "lyapunov_spectrum",
    "make_runner",
    "model_gradients",
    "model_lyapunov",
    "sequential_reference",
    "solve_model",
]
