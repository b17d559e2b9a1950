"""A microbenchmark of the fused quasi-Newton kernel alone (native/quasi_newton.c), not the
engine: its time per batch row and step at each thread count, on one process's torch CPU
tensors, without the block products around it. How the kernel scales over threads, and what a
change to it costs, side by side in one run. Printed, not asserted:
    PYTHONPATH=. .tox/stack/bin/python benchmarks/fused_kernel_threads.py [--cells rnn,lstm]
        [--hidden 32] [--batches 1,8,32] [--lengths 1024,4096] [--threads 1,2]

Each call runs the kernel over every block of one iteration's steps, each block reading the
product rows the solver's last iteration left (the last block's: the values do not change a
call's cost, denormals flushed as the runner flushes them). Calls at each thread count are timed
round-robin, the median of ROUNDS rounds of REPEATS calls each, the fastest round kept.
"""

from __future__ import annotations

import argparse
import statistics
import time

from backends.parallel_in_time.jacobians import input_projection
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import init_weights

ROUNDS = 5
REPEATS = 30


def _solver(cell: str, H: int, B: int, T: int):
    """The fused solver the runner makes, on seeded float32 torch tensors, after 3 iterations."""
    import torch

    from backends.parallel_in_time.iteration_probe import layer_arrays
    from backends.parallel_in_time.quasi_solvers import make_solver

    spec = ModelSpec(Cell(cell), H, H)
    W, R, Wb, Rb, x = layer_arrays(spec, init_weights(spec, 0), B, T, torch, "cpu")
    xw = input_projection(spec.cell, x, W, Wb, Rb)
    N = 2 * H if cell == "lstm" else H
    solver = make_solver(spec.cell, xw, R, Rb, torch.zeros(B, N))
    for _ in range(3):
        solver.iteration()
    return solver


def kernel_ns(cell: str, H: int, B: int, T: int, threads: list[int]) -> dict[int, float]:
    """Nanoseconds a batch row and step of the kernel alone at each thread count."""
    import torch

    from backends.parallel_in_time.fused_quasi import FusedQuasiNewton

    previous = torch.get_num_threads()
    torch.set_num_threads(max(threads))  # the run's buffers (P, carries) sized for the most
    try:
        solver = _solver(cell, H, B, T)
    finally:
        torch.set_num_threads(previous)
    if not isinstance(solver, FusedQuasiNewton):
        raise SystemExit(f"the fused kernel does not run here: {solver!r}")
    blocks = [arguments for _, _, arguments in solver.steps[0]]

    def call(count: int) -> None:
        for arguments in blocks:
            solver.kernel(*arguments[:4], count, *arguments[5:])

    rounds: dict[int, list[float]] = {count: [] for count in threads}
    flushed = torch.set_flush_denormal(True)
    try:
        for count in threads:
            call(count)  # warm up
        for _ in range(ROUNDS):
            for count in threads:
                samples = []
                for _ in range(REPEATS):
                    start = time.perf_counter()
                    call(count)
                    samples.append(time.perf_counter() - start)
                rounds[count].append(statistics.median(samples))
    finally:
        torch.set_flush_denormal(flushed)
    return {count: min(values) / (T * B) * 1e9 for count, values in rounds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--lengths", default="1024,4096")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    threads = [int(v) for v in args.threads.split(",")]
    print(f"fused kernel alone, ns a batch row and step (float32, H = {args.hidden})")
    print(f"{'cell':4} {'B':>3} {'T':>5} " + " ".join(f"{f'{n} thr':>8}" for n in threads))
    for cell in args.cells.split(","):
        for B in (int(v) for v in args.batches.split(",")):
            for T in (int(v) for v in args.lengths.split(",")):
                ns = kernel_ns(cell, args.hidden, B, T, threads)
                print(f"{cell:4} {B:3d} {T:5d} " + " ".join(f"{ns[n]:8.1f}" for n in threads))


if __name__ == "__main__":
    main()
