"""Measurements for issue 12 (printed, not asserted): run with
    .tox/stack/bin/python benchmarks/parallel_in_time_probe.py [--json FILE] [--quick]

1. cost: one torch quasi-Newton iteration (float32, CPU) against one product of the same FLOPs
   over all T (the recurrent projection [T*B, H] @ [H, G*H] into a preallocated output);
   medians of repeated runs.
2. iterations vs T, every cell and method, default init, float64, tol 1e-8.
3. iterations vs the largest Lyapunov exponent: tanh RNN, R ~ N(0, g^2/H), over a gain sweep.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

import numpy as np

from backends.parallel_time import model_lyapunov, solve_model
from backends.parallel_time.jacobians import input_projection
from backends.parallel_time.newton import solve_recurrence
from harness.model.spec import ModelSpec
from harness.model.weights import init_weights

TOL = 1e-8


def _median_seconds(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def solve_model_torch_recurrence(cell, xw, R, Rb, s0):
    """One quasi-Newton iteration as the torch runner does it (denormals flushed)."""
    import torch

    flushed = torch.set_flush_denormal(True)
    try:
        solve_recurrence(cell, xw, R, Rb, s0, "quasi-newton", 0.0, 1)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def iteration_cost(cell="gru", H=256, T=1024, batches=(1, 8, 32), repeats=7) -> list[dict]:
    import torch

    rows = []
    spec = ModelSpec(cell, H, H)
    weights = init_weights(spec, 0)
    W, R, Wb, Rb = (
        torch.from_numpy(np.array(weights[f"l0.{k}"][0])) for k in ("W", "R", "Wb", "Rb")
    )
    for B in batches:
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((T, B, H)).astype(np.float32))
        with torch.no_grad():
            xw = input_projection(spec.cell, x, W, Wb, Rb)
            s0 = torch.zeros(B, H)

            one_iteration = functools.partial(
                solve_model_torch_recurrence, spec.cell, xw, R, Rb, s0
            )
            out = torch.empty(T * B, R.shape[0])
            product = functools.partial(
                torch.matmul, torch.randn(T * B, H), R.T.contiguous(), out=out
            )
            iteration = _median_seconds(one_iteration, repeats)
            baseline = _median_seconds(product, repeats)
        flops = 2 * T * B * H * R.shape[0]
        rows.append(
            {
                "cell": cell,
                "H": H,
                "T": T,
                "B": B,
                "iteration_s": iteration,
                "product_s": baseline,
                "ratio": iteration / baseline,
                "product_gflops": flops / baseline / 1e9,
            }
        )
        print(
            f"  B={B:3d}: iteration {iteration * 1e3:8.2f} ms, product {baseline * 1e3:7.2f} ms "
            f"({rows[-1]['product_gflops']:.1f} GFLOP/s), ratio {rows[-1]['ratio']:.2f}"
        )
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    lengths = (1, 4, 16, 64, 256, 1024) if args.quick else (1, 4, 16, 64, 256, 1024, 4096, 16384)
    print("1. torch quasi-Newton iteration vs one product of the same FLOPs (float32, CPU)")
    cost = iteration_cost(batches=(1, 8) if args.quick else (1, 8, 32))
    print(f"2. iterations vs T (default init, H=32, float64, tol {TOL:g})")
    by_T = iterations_vs_T(lengths)
    print(f"3. iterations vs LLE (tanh RNN, R ~ N(0, g^2/H), H=32, T=1000, tol {TOL:g})")
    by_lle = iterations_vs_lle((0.25, 0.5, 1.0, 1.25, 1.5, 2.0, 3.0))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"cost": cost, "iterations_vs_T": by_T, "iterations_vs_lle": by_lle},
                handle,
                indent=1,
            )


if __name__ == "__main__":
    main()
