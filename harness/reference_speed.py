"""The foundation's speed figure: NumPy reference forward against PyTorch eager on CPU, for the
standard LSTM case (B=32, T=100, I=128, H=256, float32), after proving the two outputs equal.

Each implementation runs in its own worker process (OpenBLAS's and torch's OpenMP threads spin
after their work: sharing a process and 2 cores, each slowed the other by up to 2.5x here), and
the parent asks them for rounds in turn, numpy, torch, numpy, torch, ..., with a pause between
rounds for the idle pool to fall asleep, so that a drift in machine speed hits both alike."""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import time

import numpy as np

from backends import numpy_ref
from harness.parity import compare
from harness.spec import ModelSpec
from harness.weights import init_weights

STANDARD = {"cell": "lstm", "input_size": 128, "hidden_size": 256, "batch": 32, "steps": 100}


def _seconds(fn, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def _worker(conn, which: str, threads: int, loops: int) -> None:
    """Build one implementation, then answer each "round" with its mean seconds per call."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    torch.set_num_threads(threads)
    spec, weights, x = _standard_case()
    with threadpool_limits(limits=threads):
        if which == "numpy":
            params = dict(weights)
            run = lambda: numpy_ref.forward(spec, params, x)  # noqa: E731
        else:
            from backends.torch_backend import TorchBackend

            run = TorchBackend("cpu").build(spec, weights).forward
            run = (lambda fn: lambda: fn(x))(run)
        _seconds(run, 2)  # warm-up: allocator, BLAS buffers, oneDNN primitives
        conn.send([(i["internal_api"], i["num_threads"]) for i in threadpool_info()])
        while conn.recv() == "round":
            conn.send(_seconds(run, loops))


def _standard_case():
    spec = ModelSpec(STANDARD["cell"], STANDARD["input_size"], STANDARD["hidden_size"])
    weights = init_weights(spec, seed=0)
    x = (
        np.random.default_rng(0)
        .standard_normal((STANDARD["steps"], STANDARD["batch"], STANDARD["input_size"]))
        .astype(np.float32)
    )
    return spec, weights, x


def check_parity() -> None:
    from backends.torch_backend import TorchBackend

    spec, weights, x = _standard_case()
    ours = numpy_ref.forward(spec, dict(weights), x)
    theirs = TorchBackend("cpu").build(spec, weights).forward(x)
    for name in ("y", "h_n", "c_n"):
        check = compare(name, getattr(ours, name), getattr(theirs, name), "float32")
        if not check.passed:
            raise AssertionError(f"not the same model, timing refused: {check.message}")


def measure(rounds: int = 15, threads: int = 2, loops: int = 3, pause: float = 0.3) -> dict:
    import torch

    check_parity()
    ctx = multiprocessing.get_context("spawn")
    workers, samples, pools = {}, {"numpy": [], "torch": []}, {}
    try:
        for which in samples:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, which, threads, loops), daemon=True)
            proc.start()
            workers[which] = (proc, parent)
            pools[which] = parent.recv()
        for _ in range(rounds):
            for which, (_, conn) in workers.items():
                time.sleep(pause)
                conn.send("round")
                samples[which].append(conn.recv())
    finally:
        for proc, conn in workers.values():
            conn.send("stop")
            proc.join(timeout=10)
    numpy_s, torch_s = samples["numpy"], samples["torch"]
    ratios = [a / b for a, b in zip(numpy_s, torch_s, strict=True)]
    return {
        "case": STANDARD, "threads": threads, "rounds": rounds, "loops_per_round": loops,
        "numpy_median_ms": 1e3 * statistics.median(numpy_s),
        "torch_median_ms": 1e3 * statistics.median(torch_s),
        "ratio_of_medians": statistics.median(numpy_s) / statistics.median(torch_s),
        "ratio_median_of_rounds": statistics.median(ratios),
        "ratio_min": min(ratios), "ratio_max": max(ratios),
        "numpy": np.__version__, "torch": torch.__version__, "thread_pools": pools,
        "cpu": _cpu_model(), "machine": platform.machine(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "numpy_samples_ms": [1e3 * s for s in numpy_s],
        "torch_samples_ms": [1e3 * s for s in torch_s],
    }  # fmt: skip


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_result(r: dict) -> str:
    c = r["case"]
    return (
        f"LSTM B={c['batch']} T={c['steps']} I={c['input_size']} H={c['hidden_size']} float32, "
        f"{r['threads']} threads, {r['rounds']} interleaved rounds x {r['loops_per_round']} calls "
        f"in separate worker processes\n"
        f"  numpy reference forward  median {r['numpy_median_ms']:.2f} ms\n"
        f"  torch eager CPU forward  median {r['torch_median_ms']:.2f} ms\n"
        f"  numpy / torch            {r['ratio_of_medians']:.2f}x (per-round ratios "
        f"{r['ratio_min']:.2f}..{r['ratio_max']:.2f})\n"
        f"  cpu: {r['cpu']}; OPENBLAS_CORETYPE={r['OPENBLAS_CORETYPE']}; "
        f"thread pools {r['thread_pools']}"
    )
