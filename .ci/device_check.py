"""GPU speed probe for the device machine: the standard LSTM case and a B=1 latency case,
torch CUDA eager (cuDNN, TF32 off and on) against the NumPy reference run through CuPy.
Each timing: 5 warm-ups, then the median of 30 calls, each ended by a device synchronize."""

from __future__ import annotations

import json
import statistics
import sys
import time

import cupy
import numpy as np
import torch

from backends import numpy_ref
from backends.torch_backend import TorchBackend
from harness.parity import compare
from harness.spec import ModelSpec
from harness.weights import init_weights


def median_ms(fn, sync, calls=30, warmup=5):
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples), samples


def probe(cell, B, T, I, H):
    spec = ModelSpec(cell, I, H)
    weights = init_weights(spec, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    reference = numpy_ref.forward(spec, dict(weights), x)
    gpu_params = {k: cupy.asarray(v) for k, v in weights.items()}
    x_gpu = cupy.asarray(x)
    rows = {}
    for label, tf32 in (("torch-cuda", False), ("torch-cuda-tf32", True)):
        prepared = TorchBackend("cuda", tf32=tf32).build(spec, weights)
        x_t = torch.from_numpy(x).cuda()

        def run(prepared=prepared, x_t=x_t):
            prepared.apply_tf32()
            with torch.inference_mode():
                return prepared.model(x_t)

        err = compare("y", reference.y, run()[0].cpu().numpy(), "float32")
        ms, samples = median_ms(run, torch.cuda.synchronize)
        rows[label] = {"median_ms": ms, "max_abs_err_y": err.max_abs, "parity": err.passed}
    out = numpy_ref.forward(spec, gpu_params, x_gpu)
    err = compare("y", reference.y, cupy.asnumpy(out.y), "float32")
    ms, _ = median_ms(lambda: numpy_ref.forward(spec, gpu_params, x_gpu),
                      cupy.cuda.Device().synchronize)  # fmt: skip
    rows["numpy_ref-on-cupy"] = {
        "median_ms": ms,
        "max_abs_err_y": err.max_abs,
        "parity": err.passed,
    }
    for row in rows.values():
        row["per_step_us"] = 1e3 * row["median_ms"] / T
    return {"cell": cell, "B": B, "T": T, "I": I, "H": H, "dtype": "float32", "results": rows}


if __name__ == "__main__":
    cases = [probe("lstm", 32, 100, 128, 256), probe("lstm", 1, 100, 128, 256),
             probe("gru", 32, 100, 128, 256)]  # fmt: skip
    record = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version(), "cupy": cupy.__version__, "cases": cases,
              "method": __doc__.strip()}  # fmt: skip
    with open(sys.argv[1], "w") as handle:
        json.dump(record, handle, indent=1)
    for c in cases:
        for name, r in c["results"].items():
            print(
                f"{c['cell']} B={c['B']} T={c['T']} {name:18} {r['median_ms']:8.3f} ms "
                f"{r['per_step_us']:7.1f} us/step  max|err| {r['max_abs_err_y']:.1e}"
            )
