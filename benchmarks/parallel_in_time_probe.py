"""A microbenchmark, not the timing engine: what one parallel-in-time iteration costs against
one matrix product of the same FLOPs, timed round-robin in one process (no worker per case, no
machine lock, no parity check of its own: the solver it times is checked by the engine's
newton and quasi-newton cases and by the tests). Its figures are quoted as a microbenchmark's.
Printed, not asserted: run with
    .tox/stack/bin/python benchmarks/parallel_in_time_probe.py [--json FILE] [--quick]

1. cost: one torch quasi-Newton iteration (float32, CPU) against one product of the same FLOPs
   over all T (the recurrent projection [T*B, H] @ [H, G*H] into a preallocated output), timed
   round-robin in one process, per thread count, cell, H, T and B (see iteration_cost); then,
   after every torch row, the NumPy runtime's iteration against NumPy's own product, the BLAS
   limited to the same thread count, each timed in blocks apart (numpy_iteration_cost).
   --cost-only --cells gru --hidden 256 --lengths 1024 --batches 1,32 --threads 1 narrows it.
2. iterations vs T, every cell and method, default init, float64, tol 1e-8.
3. iterations vs the largest Lyapunov exponent: tanh RNN, R ~ N(0, g^2/H), over a gain sweep.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time

import numpy as np

from backends.parallel_in_time import model_lyapunov, solve_model
from backends.parallel_in_time.jacobians import input_projection
from harness.model.spec import ModelSpec
from harness.model.weights import init_weights

TOL = 1e-8


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _flushed(fn):
    """fn with denormals flushed, as the torch runner runs the solve."""
    import torch

    def run():
        flushed = torch.set_flush_denormal(True)
        try:
            return fn()
        finally:
            if flushed:
                torch.set_flush_denormal(False)

    return run


def _summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p10": ordered[len(ordered) // 10],
        "p90": ordered[-1 - len(ordered) // 10],
        "n": len(ordered),
    }


def module_at(commit: str, path: str = "backends/parallel_in_time/torch_quasi.py"):
    """The module `path` as it was at `commit` (git show), loaded under its own name: the
    iteration of an earlier commit timed beside this one's, in one run."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location(f"torch_quasi_at_{commit}", file.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def iteration_cost(
    cell: str,
    H: int,
    T: int,
    B: int,
    before=True,
    compiled=False,
    budget_s=4.0,
    rounds=(5, 25),
    baseline=None,
) -> dict:
    """One torch quasi-Newton iteration (float32, CPU) against the product of the same FLOPs.

    The product (the baseline): the iteration's own matrix product for all T at once, the
    recurrent projection h_{t-1} R^T of every step, [T*B, H] @ [H, G*H] (G = 1 RNN, 3 GRU,
    4 LSTM; 2 T B H G H FLOPs) by torch.matmul into a preallocated output. x W is not part of
    it: input_projection computes it once before the iterations.
    The iteration: one update of the iterate on a prepared solve (buffers and x W already there),
    denormals flushed as in the runner. "after": the solver quasi_solvers.make_solver gives the
    runner (the fused C kernel where it builds, fused_quasi.py); "torch": torch_quasi.QuasiNewton
    (torch's fused kernels: the GPU's path, and the CPU's before the C kernel); "before":
    newton.iterate, the generic array-namespace iteration, with max_iter = 1; "compiled": the
    torch path with its elementwise part through torch.compile (compile time reported
    separately); "baseline": the torch path of an earlier commit (module_at), where one is given.
    All are timed round-robin in the same process (one sample of each per round), for at least
    rounds[0] and at most rounds[1] rounds, stopping after budget_s seconds; ratio = each round's
    iteration time / that round's product time, summarised by median, 10th and 90th percentile.
    """
    import torch

    from backends.parallel_in_time.newton import iterate
    from backends.parallel_in_time.quasi_solvers import make_solver
    from backends.parallel_in_time.torch_quasi import QuasiNewton

    spec = ModelSpec(cell, H, H)
    weights = init_weights(spec, 0)
    W, R, Wb, Rb = (
        torch.from_numpy(np.array(weights[f"l0.{k}"][0])) for k in ("W", "R", "Wb", "Rb")
    )
    N = 2 * H if cell == "lstm" else H
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((T, B, H)).astype(np.float32))
    timed = {}
    compile_s = None
    with torch.no_grad():
        xw = input_projection(spec.cell, x, W, Wb, Rb)
        s0 = torch.zeros(B, N)
        out = torch.empty(T * B, R.shape[0])
        h, RT = torch.randn(T * B, H), R.T.contiguous()
        timed["product"] = functools.partial(torch.matmul, h, RT, out=out)
        timed["after"] = _flushed(make_solver(spec.cell, xw, R, Rb, s0).iteration)
        timed["torch"] = _flushed(QuasiNewton(spec.cell, xw, R, Rb, s0, compile=False).iteration)
        if baseline is not None:
            old = baseline.QuasiNewton(spec.cell, xw, R, Rb, s0, compile=False)
            timed["baseline"] = _flushed(old.iteration)
        if before:
            S = torch.zeros(T, B, N)
            timed["before"] = _flushed(
                functools.partial(iterate, spec.cell, xw, R, Rb, s0, S, "diagonal", 0.0, 1)
            )
        if compiled:
            start = time.perf_counter()
            solver = QuasiNewton(spec.cell, xw, R, Rb, s0, compile=True)
            solver.iteration()
            compile_s = time.perf_counter() - start
            timed["compiled"] = _flushed(solver.iteration)
        for fn in timed.values():  # warm up
            fn()
        samples: dict[str, list[float]] = {name: [] for name in timed}
        start = time.perf_counter()
        while len(samples["product"]) < rounds[1] and (
            len(samples["product"]) < rounds[0] or time.perf_counter() - start < budget_s
        ):
            for name, fn in timed.items():
                samples[name].append(_seconds(fn))
    flops = 2 * T * B * H * R.shape[0]
    product = samples["product"]
    row = {
        "cell": cell,
        "H": H,
        "T": T,
        "B": B,
        "threads": torch.get_num_threads(),
        "product_s": _summary(product),
        "product_gflops": flops / statistics.median(product) / 1e9,
        "compile_s": compile_s,
    }
    for name in timed:
        if name != "product":
            row[f"{name}_s"] = _summary(samples[name])
            row[f"{name}_ratio"] = _summary(
                [a / p for a, p in zip(samples[name], product, strict=True)]
            )
    return row


def numpy_iteration_cost(
    cell: str, H: int, T: int, B: int, budget_s=4.0, rounds=(3, 12), quiet_s=0.3
):
    """The NumPy runtime's quasi-Newton iteration (float32; make_solver on NumPy arrays: at
    several BLAS threads the fused C kernel making the product itself on its own pool, at one
    thread on the calling thread) against numpy.matmul's product of the same FLOPs ([T*B, H] @
    [H, G*H] into a preallocated output), each timed in a block of calls of its own (at least
    BLOCK_CALLS and BLOCK_S), quiet_s after the other's: OpenBLAS's threads spin ~0.1 s after a
    product and starve the kernel's pool (interleaved call by call, an iteration at H = 32 took
    up to 1000x its time), and the pool's workers spin 0.1 ms after an iteration. Each round
    gives a block's median of each, and its ratio; the rounds repeat within budget_s. Timed apart
    from the torch rows too: the BLAS's threads would starve torch's OpenMP workers (interleaved,
    torch's product at 2 threads took up to 400x its time)."""
    from backends.parallel_in_time.iteration_probe import layer_arrays
    from backends.parallel_in_time.quasi_solvers import make_solver

    spec = ModelSpec(cell, H, H)
    W, R, Wb, Rb, x = layer_arrays(spec, init_weights(spec, 0), B, T, np, "cpu")
    N = 2 * H if cell == "lstm" else H
    xw = input_projection(spec.cell, x, W, Wb, Rb)
    h = np.random.default_rng(1).standard_normal((T * B, H)).astype(np.float32)
    RT = np.ascontiguousarray(R.T)
    out = np.empty((T * B, R.shape[0]), np.float32)
    product = functools.partial(np.matmul, h, RT, out=out)
    iteration = make_solver(spec.cell, xw, R, Rb, np.zeros((B, N), np.float32)).iteration
    samples: dict[str, list[float]] = {"product": [], "numpy": []}
    blocks: dict[str, list[float]] = {"product": [], "numpy": []}
    start = time.perf_counter()
    while len(blocks["product"]) < rounds[1] and (
        len(blocks["product"]) < rounds[0] or time.perf_counter() - start < budget_s
    ):
        for name, call in (("product", product), ("numpy", iteration)):
            time.sleep(quiet_s)
            block = _block(call)
            samples[name] += block
            blocks[name].append(statistics.median(block))
    flops = 2 * T * B * H * R.shape[0]
    return {
        "numpy_product_s": _summary(samples["product"]),
        "numpy_product_gflops": flops / statistics.median(samples["product"]) / 1e9,
        "numpy_s": _summary(samples["numpy"]),
        "numpy_ratio": _summary(
            [a / p for a, p in zip(blocks["numpy"], blocks["product"], strict=True)]
        ),
        "numpy_timing": f"blocks apart: >= {BLOCK_CALLS} calls and {BLOCK_S} s each, "
        f"{quiet_s} s after the other's; ratio of the blocks' medians, per round",
    }


BLOCK_CALLS, BLOCK_S = 5, 0.02


def _block(call) -> list[float]:
    """One warm-up call, then calls timed back to back until BLOCK_CALLS and BLOCK_S."""
    call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < BLOCK_CALLS or time.perf_counter() - start < BLOCK_S:
        times.append(_seconds(call))
    return times


def numpy_cost_rows(rows: list[dict], budget_s: float) -> None:
    """numpy_iteration_cost for each torch row (same thread count, cell, H, T, B), into it."""
    from threadpoolctl import threadpool_limits

    time.sleep(1.0)  # torch's OpenMP workers stop spinning
    print("   numpy: the NumPy runtime's iteration (the kernel, making its product on its own pool")
    print("   of `thr` threads; at one thread on the caller) / numpy.matmul's product of its FLOPs")
    print("   at `thr` BLAS threads, each timed in blocks apart (numpy_iteration_cost)")
    print(f"{'thr':>3} {'cell':4} {'H':>4} {'T':>5} {'B':>3} {'product ms':>10} {'GFLOP/s':>7}"
          f" {'numpy ratio (p10-p90)':>24}")  # fmt: skip
    for row in rows:
        with threadpool_limits(limits=row["threads"], user_api="blas"):
            row.update(numpy_iteration_cost(row["cell"], row["H"], row["T"], row["B"], budget_s))
        r = row["numpy_ratio"]
        print(
            f"{row['threads']:3d} {row['cell']:4} {row['H']:4d} {row['T']:5d} {row['B']:3d} "
            f"{row['numpy_product_s']['median'] * 1e3:10.3f} {row['numpy_product_gflops']:7.1f}"
            f" {r['median']:9.2f} ({r['p10']:5.2f}-{r['p90']:6.2f})",
            flush=True,
        )


def cost_table(
    cells, sizes, lengths, batches, threads, before, compiled, budget_s, baseline=None
) -> list[dict]:
    import torch

    rows = []
    head = f"{'thr':>3} {'cell':4} {'H':>4} {'T':>5} {'B':>3} {'product ms':>10} {'GFLOP/s':>7}"
    names = ["after", "torch"] + (["compiled"] if compiled else [])
    names += ["before"] if before else []
    names += ["baseline"] if baseline is not None else []
    print(head + "".join(f" {n + ' ratio (p10-p90)':>24}" for n in names))
    for count in threads:
        torch.set_num_threads(count)
        for cell in cells:
            for H in sizes:
                for T in lengths:
                    for B in batches:
                        row = iteration_cost(
                            cell, H, T, B, before, compiled, budget_s, baseline=baseline
                        )
                        rows.append(row)
                        line = (
                            f"{count:3d} {cell:4} {H:4d} {T:5d} {B:3d} "
                            f"{row['product_s']['median'] * 1e3:10.3f} "
                            f"{row['product_gflops']:7.1f}"
                        )
                        for n in names:
                            r = row[f"{n}_ratio"]
                            line += f" {r['median']:9.2f} ({r['p10']:5.2f}-{r['p90']:6.2f})"
                        if row["compile_s"] is not None:
                            line += f"  compile {row['compile_s']:.1f} s"
                        print(line, flush=True)
    return rows


def iterations_vs_T(lengths, H=32, I=8, B=1, budget_s=20.0) -> list[dict]:
    rows = []
    for cell in ("rnn", "gru", "lstm"):
        spec = ModelSpec(cell, I, H, dtype="float64")
        params = dict(init_weights(spec, 0))
        x_all = np.random.default_rng(1).standard_normal((max(lengths), B, I))
        for method, max_iter in (("newton", 100), ("quasi-newton", 1000)):
            for T in lengths:
                start = time.perf_counter()
                result = solve_model(spec, params, x_all[:T], method, TOL, max_iter)
                seconds = time.perf_counter() - start
                rows.append(
                    {
                        "cell": cell,
                        "method": method,
                        "T": T,
                        "H": H,
                        "iterations": result.iterations,
                        "seconds": seconds,
                    }
                )
                print(f"  {cell:4s} {method:12s} T={T:6d}: {result.iterations} ({seconds:.2f} s)")
                if seconds > budget_s:
                    break
    return rows


def iterations_vs_lle(gains, H=32, T=1000, B=1) -> list[dict]:
    rows = []
    spec = ModelSpec("rnn", H, H, dtype="float64")
    for gain in gains:
        params = dict(init_weights(spec, 0))
        rng = np.random.default_rng(10)
        params["l0.R"] = rng.standard_normal((1, H, H)) * gain / np.sqrt(H)
        x = rng.standard_normal((T, B, H))
        lle = model_lyapunov(spec, params, x).lle
        counts = {}
        for method, max_iter in (("newton", 60), ("quasi-newton", 600)):
            result = solve_model(spec, params, x, method, TOL, max_iter)
            counts[method] = result.iterations
        rows.append({"gain": gain, "lle": lle, **counts})
        print(
            f"  g={gain:5.2f}: LLE {lle:+.3f}  newton {counts['newton']}  "
            f"quasi-newton {counts['quasi-newton']}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--hidden", default="64,256", help="H values")
    parser.add_argument("--lengths", default="1024,4096", help="T values for the cost")
    parser.add_argument("--batches", default="1,8,32", help="B values for the cost")
    parser.add_argument("--no-before", action="store_true", help="skip the generic iteration")
    parser.add_argument("--compile", action="store_true", help="also time the compiled form")
    parser.add_argument("--budget", type=float, default=4.0, help="seconds per cost row")
    parser.add_argument("--cost-only", action="store_true")
    parser.add_argument(
        "--baseline-commit",
        help="also time the fused iteration as it was at this commit (git show), side by side",
    )
    args = parser.parse_args()

    def ints(text):
        return [int(v) for v in text.split(",")]

    lengths = (1, 4, 16, 64, 256, 1024) if args.quick else (1, 4, 16, 64, 256, 1024, 4096, 16384)
    from backends.parallel_in_time.quasi_solvers import describe

    iteration = describe("quasi-newton", "torch", "cpu")
    print("1. torch quasi-Newton iteration / one product of the same FLOPs (float32, CPU)")
    print(f"   after: {iteration}; torch: torch's fused kernels (torch_quasi.py)")
    cost = cost_table(
        args.cells.split(","),
        ints(args.hidden),
        ints(args.lengths),
        ints(args.batches),
        ints(args.threads),
        not args.no_before,
        args.compile,
        args.budget,
        module_at(args.baseline_commit) if args.baseline_commit else None,
    )
    numpy_cost_rows(cost, args.budget)
    by_T = by_lle = []
    if not args.cost_only:
        print(f"2. iterations vs T (default init, H=32, float64, tol {TOL:g})")
        by_T = iterations_vs_T(lengths)
        print(f"3. iterations vs LLE (tanh RNN, R ~ N(0, g^2/H), H=32, T=1000, tol {TOL:g})")
        by_lle = iterations_vs_lle((0.25, 0.5, 1.0, 1.25, 1.5, 2.0, 3.0))
    if args.json:
        from harness.atomic import write_text_atomic
        from harness.machine.environment import collect_environment

        document = {
            "kind": "rnnbench-parallel-in-time-iteration-cost",
            "method": "microbenchmark in one process, not the engine: the torch rows"
            " round-robin, the NumPy rows in blocks apart",
            "schema_version": 1,
            "command": " ".join(sys.argv),
            "iteration": iteration,
            "environment": collect_environment(),
            "cost": cost,
            "iterations_vs_T": by_T,
            "iterations_vs_lle": by_lle,
        }
        write_text_atomic(args.json, json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
