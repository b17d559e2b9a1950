"""Parallel-in-time sweep documents and Newton benchmark records with made-up, exactly known
numbers, for testing what reads them."""

from __future__ import annotations

from harness.bench.case import make_case
from harness.records.parallel_in_time import SweepDocument
from harness.sweeps import parallel_in_time as sweep
from harness.sweeps import parallel_in_time_work as counts
from tests.synthetic_results import document, record, spread

SHAPE = {"cell": "gru", "batch": 1, "steps": 64, "input_size": 64, "hidden": 64, "threads": 2}
# Dense Newton, GRU, B=1, T=64, I=H=64, 5 iterations, by hand (parallel_in_time_work's
# docstring): the sequential pass 2*64*3*64*(64+64) = 3,145,728 FLOPs; the projection
# 1,572,864; one iteration 64*(2*3*64^2 [f] + 2*3*64^2 [J] + 2*64^2 [b]) + 62 compositions
# * 2*64^3 + 120 applications * 2*64^2 = 37,158,912;
# (1,572,864 + 5 * 37,158,912) / 3,145,728 = 59.5625.
NEWTON_WORK = 59.5625


def row(grid="steps", cell="gru", method="newton", steps=16, gain=1.0, lle=-0.5, iterations=5):
    """One sweep row; iterations None: not converged (max_iter 100)."""
    out = {
        "grid": grid,
        "cell": cell,
        "method": method,
        "hidden": 32,
        "input_size": 8,
        "batch": 2,
        "steps": steps,
        "gain": gain,
        "seed": 0,
        "dtype": "float64",
        "tol": 1e-12,
        "max_iter": 100,
        "status": "solved",
        "lle": lle,
        "converged": iterations is not None,
        "iterations": iterations,
        "reason": None if iterations else "reached max_iter = 100 with residual 3 > tol",
        "max_abs_error": 1e-15 if iterations else None,
        "parity_passed": True if iterations else None,
        "seconds": 0.01,
    }
    out.update(counts.work(method, cell, 2, steps, 8, 32, iterations))
    return out


def sweep_doc(machine="sweep-box") -> SweepDocument:
    """GRU over T (newton 2, 5, 5; quasi-newton 2, 16, 22 at T = 1, 16, 256) and a gain sweep at
    T=256 whose two chaotic points (LLE > 0) do not converge and whose gain-3 point stops off
    the sequential run."""
    rows = []
    for steps, newton, quasi in ((1, 2, 2), (16, 5, 16), (256, 5, 22)):
        rows.append(row(steps=steps, iterations=newton))
        rows.append(row(method="quasi-newton", steps=steps, iterations=quasi))
    for gain, lle, iterations in (
        (0.5, -0.9, 4),
        (1.0, -0.5, 5),
        (6.0, 0.05, None),
        (8.0, 0.2, None),
    ):
        rows.append(row("gain", steps=256, gain=gain, lle=lle, iterations=iterations))
    # near LLE = 0 the change between iterates falls under tol while still off the sequential run
    rows.append(row("gain", steps=256, gain=3.0, lle=-0.01, iterations=969))
    rows[-1].update(parity_passed=False, max_abs_error=5e-11)
    environment = {"machine": machine, "cpu": {}, "git": {"commit": "0123456789abcdef"}}
    return sweep.document(sweep.Grid(), rows, environment, 12.0)


def bench_doc(machine="bench-box") -> dict:
    """torch-cpu GRU (SHAPE): the step loop 10 ms, Newton 20 ms (5 iterations) and the same
    FLOPs as one product 2.5 ms, round by round in one group: the solve takes exactly 2x the
    step loop and the recurrence penalty is exactly 4x."""
    forward = record(make_case("torch-cpu", "forward", **SHAPE), spread(10e-3))
    newton = record(make_case("torch-cpu", "newton", **SHAPE), spread(20e-3))
    newton["parallel_in_time"] = {
        "method": "newton",
        "iterations": 5,
        "tol": 1e-6,
        "max_iter": 65,
        "lle": -0.4,
        "converged": True,
    }
    gemm = record(make_case("torch-cpu", "gemm", **SHAPE), spread(2.5e-3))
    return document([forward, newton, gemm], machine)
