"""What a benchmark case times, built in the current (worker) process: the workload, its
implementation class, and the parity checks that must pass before a single timing counts.

Every workload is built from the same seeded, float32-exact weights and inputs, and is checked
against the NumPy reference run in float64 on them (forward: y and final states; train: the
first step's loss and updated W, R; gemm/peak: the product; bandwidth: the copy)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from backends import mingru, numpy_ref
from harness.bench.suites import BenchCase
from harness.model.outputs import Outputs
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec
from harness.model.weights import digest_arrays, init_weights
from harness.parity.cases import float32_exact
from harness.parity.checks import Comparison, compare, compare_all

LEARNING_RATE = 0.01
SEED = 0


@dataclasses.dataclass
class Workload:
    run: Callable[[], Any]  # one call, device sync inside
    impl_class: str
    checks: list[Comparison]
    weights_digest: str = ""
    notes: str = ""


def build(case: BenchCase) -> Workload:
    """The workload for `case`; NotSupported (with its reason) where it cannot run here."""
    if case.is_probe:
        return _probe(case)
    if case.mode == "gemm":
        return _gemm(case)
    if case.cell == "mingru":
        return _mingru(case)
    if case.mode == "train":
        return _train(case)
    return _forward(case)


# ---- data ----------------------------------------------------------------------------------


def model_data(case: BenchCase):
    """(spec in the case's dtype, float64 weights, float64 x [T, B, I]), float32-exact."""
    spec = ModelSpec(
        case.cell, case.input_size, case.hidden, num_layers=case.layers, dtype=case.dtype
    )
    weights64 = init_weights(spec.replace(dtype="float32"), seed=SEED).astype("float64")
    rng = np.random.default_rng(SEED + 1)
    x64 = float32_exact(rng.standard_normal((case.steps, case.batch, case.input_size)))
    return spec, weights64, x64


def _reference(case: BenchCase):
    spec, weights64, x64 = model_data(case)
    outputs = numpy_ref.forward(spec.replace(dtype="float64"), dict(weights64), x64)
    return spec, weights64, x64, outputs


def _cast(array, dtype):
    return np.ascontiguousarray(array, dtype=dtype)


def _cupy():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise NotSupported("CuPy finds no CUDA device")
    except ImportError:
        raise NotSupported("CuPy is not installed (GPU machines only)") from None
    except NotSupported:
        raise
    except Exception as exc:  # no driver
        raise NotSupported(f"CuPy finds no CUDA device: {str(exc).splitlines()[0]}") from None
    return cupy


def _torch_device(case: BenchCase) -> str:
    import torch

    device = "cuda" if "cuda" in case.target else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise NotSupported("no CUDA device (torch.cuda.is_available() is False)")
    return device


def _torch_sync(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


# ---- forward -------------------------------------------------------------------------------

TORCH_CPU_CLASS = {
    "lstm": "oneDNN fused LSTM (mkldnn_rnn_layer)",
    "gru": "ATen step loop (addmm per step)",
    "rnn": "ATen step loop (addmm per step)",
}


def _ort_class(form: str) -> str:
    """The onnx_audit form ("native LSTM", "Loop", "Scan", "unrolled") as an implementation."""
    if form.startswith("native"):
        return f"ONNX {form.split(' ', 1)[1]} op (ORT kernel)"
    return "ONNX graph unrolled over T" if form == "unrolled" else f"ONNX {form}, a step per turn"


def _forward(case: BenchCase) -> Workload:
    spec, weights64, x64, ref = _reference(case)
    weights, x = weights64.astype(case.dtype), _cast(x64, case.dtype)
    target, notes = case.target, ""
    if target == "numpy":
        params = dict(weights)
        run, to_outputs = (lambda: numpy_ref.forward(spec, params, x)), (lambda out: out)
        impl = "NumPy step loop (one BLAS GEMM per step)"
    elif target == "cupy":
        cupy = _cupy()
        params = {k: cupy.asarray(v) for k, v in weights.items()}
        xg, sync = cupy.asarray(x), cupy.cuda.Device().synchronize

        def run():
            out = numpy_ref.forward(spec, params, xg)
            sync()
            return out

        def to_outputs(out):
            return Outputs(**{k: cupy.asnumpy(v) for k, v in out.as_dict().items()})

        impl = "CuPy step loop (one cuBLAS GEMM per step)"
    elif target.startswith("torch-"):
        from backends.torch_backend import PreparedTorch

        device = _torch_device(case)
        compile_mode = {"torch-cpu-compile": "default", "torch-cuda-graphs": "reduce-overhead"}
        prepared = PreparedTorch(spec, weights, device)
        run, to_outputs = prepared.runner(x, compile_mode.get(target))
        impl = "cuDNN fused RNN" if device == "cuda" else TORCH_CPU_CLASS[case.cell]
        if target == "torch-cpu-compile":
            impl = f"torch.compile (inductor) around the {impl}"
        elif target == "torch-cuda-graphs":
            impl = "torch.compile reduce-overhead: cuDNN RNN replayed from a CUDA graph"
    elif target.startswith("tf-"):
        from backends.tf_backend import PreparedKeras

        mode = target.split("-", 1)[1]
        run, to_outputs = PreparedKeras(spec, weights, mode).runner(x)
        impl = {
            "eager": "Keras RNN loop, TF eager",
            "function": "Keras RNN loop in tf.function",
            "xla": "Keras RNN loop compiled by XLA",
        }[mode]
    elif target.startswith("ort-"):
        from backends.ort_backend import OrtBackend

        _, exporter, provider = target.split("-")
        backend = OrtBackend(exporter, provider, threads=case.threads)
        reason = backend.unavailable_reason()
        if reason:
            raise NotSupported(reason)
        prepared = backend.build(spec, weights)
        run, to_outputs = prepared.runner(x)
        impl = _ort_class(prepared.audit["form"])
        notes = f"{exporter} export: {prepared.audit['node_count']} nodes"
    else:
        raise NotSupported(f"{target} has no forward mode")
    got = to_outputs(run())
    checks = compare_all(ref.as_dict(), got.as_dict(), case.dtype)
    return Workload(run, impl, checks, weights.digest(), notes)


# ---- training step -------------------------------------------------------------------------


def _train(case: BenchCase) -> Workload:
    """One step of plain SGD (lr 0.01) on mean((y - target)^2): forward, BPTT, update."""
    spec, weights64, x64 = model_data(case)
    target64 = float32_exact(
        np.random.default_rng(SEED + 2).standard_normal((case.steps, case.batch, case.hidden))
    )
    expected = _sgd_step_numpy(spec.replace(dtype="float64"), _writable(weights64), x64, target64)
    weights, x, goal = weights64.astype(case.dtype), _cast(x64, case.dtype), target64
    if case.target == "numpy":
        params = _writable(weights)
        goal = _cast(target64, case.dtype)
        run = lambda: _sgd_step_numpy(spec, params, x, goal)["loss"]  # noqa: E731
        impl, after = "NumPy forward + hand-written BPTT", (lambda: params)
    elif case.target in ("torch-cpu", "torch-cuda"):
        run, after = _torch_train(case, spec, weights, x, target64)
        impl = "torch autograd through " + (
            "cuDNN" if "cuda" in case.target else TORCH_CPU_CLASS[case.cell]
        )
    elif case.target.startswith("tf-"):
        from backends.tf_backend import PreparedKeras

        mode = case.target.split("-", 1)[1]
        run, after = PreparedKeras(spec, weights, mode).sgd_runner(x, target64, LEARNING_RATE)
        impl = f"Keras RNN loop + GradientTape ({mode})"
    else:
        raise NotSupported(f"{case.target} has no training mode")
    loss = float(run())
    params = after()
    checks = [
        compare("loss", np.float64(expected["loss"]), np.asarray(loss, case.dtype), case.dtype)
    ]
    for name in ("l0.W", "l0.R"):
        checks.append(compare(f"updated {name}", expected[name], params[name], case.dtype))
    return Workload(run, impl, checks, weights.digest())


def _writable(weights) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in weights.items()}


def _sgd_step_numpy(spec, params, x, goal):
    out, tape = numpy_ref.forward_with_tape(spec, params, x)
    error = out.y - goal
    grads = numpy_ref.backward(params, tape, dy=(2.0 / error.size) * error)
    for name, g in grads.items():
        if name in params:
            params[name] -= params[name].dtype.type(LEARNING_RATE) * g
    return {"loss": float(np.mean(error**2)), **params}


def _torch_train(case, spec, weights, x, goal):
    import torch

    from backends.torch_backend import PreparedTorch, from_torch_state_dict

    device = _torch_device(case)
    prepared = PreparedTorch(spec, weights, device)
    model, sync = prepared.model, _torch_sync(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    xt, gt = prepared._tensor(x), prepared._tensor(goal)

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((model(xt)[0] - gt) ** 2)
        loss.backward()
        optimizer.step()
        sync()
        return loss.detach()

    return run, lambda: dict(from_torch_state_dict(spec, model.state_dict()))


# ---- equal-FLOP matrix product, probes -----------------------------------------------------


def _gemm(case: BenchCase) -> Workload:
    """The case's forward FLOPs as one product per layer, [T*B, I_l + H] @ [I_l + H, G*H]: the
    same arithmetic with every step available at once (minGRU: [T*B, I_l] @ [I_l, 2H])."""
    from harness.bench.flops import GATES, layer_inputs

    rng = np.random.default_rng(SEED + 3)
    G, H, rows = GATES[case.cell], case.hidden, case.steps * case.batch
    extra = 0 if case.cell == "mingru" else H
    pairs = [
        (
            float32_exact(rng.standard_normal((rows, i + extra))),
            float32_exact(rng.standard_normal((i + extra, G * H)) / np.sqrt(i + extra)),
        )
        for i in layer_inputs(case.input_size, H, case.layers)
    ]
    run, fetch = _matmul_runner(case, pairs)
    got = fetch(run())
    checks = [compare(f"product {n}", a @ b, got[n], case.dtype) for n, (a, b) in enumerate(pairs)]
    return Workload(run, "one GEMM per layer (all steps at once)", checks)


def _matmul_runner(case: BenchCase, pairs):
    """(run, fetch): run() multiplies every pair; fetch(result) gives NumPy arrays."""
    dtype, target = case.dtype, case.target
    if target == "numpy":
        arrays = [(_cast(a, dtype), _cast(b, dtype)) for a, b in pairs]
        return (lambda: [a @ b for a, b in arrays]), (lambda out: out)
    if target == "cupy":
        cupy = _cupy()
        arrays = [(cupy.asarray(a, dtype), cupy.asarray(b, dtype)) for a, b in pairs]
        sync = cupy.cuda.Device().synchronize
        return (lambda: ([a @ b for a, b in arrays], sync())[0]), (
            lambda out: [cupy.asnumpy(c) for c in out]
        )
    if target.startswith("torch-"):
        import torch

        device = _torch_device(case)
        torch.backends.cuda.matmul.allow_tf32 = False  # the same float32 as the RNNs are held to
        arrays = [
            (
                torch.as_tensor(a, dtype=getattr(torch, dtype), device=device),
                torch.as_tensor(b, dtype=getattr(torch, dtype), device=device),
            )
            for a, b in pairs
        ]
        sync = _torch_sync(device)
        return (lambda: ([a @ b for a, b in arrays], sync())[0]), (
            lambda out: [c.cpu().numpy() for c in out]
        )
    if target == "tf-function":
        import tensorflow as tf

        arrays = [(tf.constant(_cast(a, dtype)), tf.constant(_cast(b, dtype))) for a, b in pairs]
        product = tf.function(lambda: [tf.matmul(a, b) for a, b in arrays])
        return (lambda: [c.numpy() for c in product()]), (lambda out: out)
    raise NotSupported(f"{target} has no matrix-product mode")


def _probe(case: BenchCase) -> Workload:
    """peak: an N x N product (the machine's attainable FLOP/s in this library); bandwidth: a
    copy of N elements (its attainable memory bandwidth)."""
    rng = np.random.default_rng(SEED + 4)
    if case.mode == "peak":
        n = case.size
        pair = (
            float32_exact(rng.standard_normal((n, n))),
            float32_exact(rng.standard_normal((n, n))),
        )
        run, fetch = _matmul_runner(case, [pair])
        got = fetch(run())[0]
        return Workload(
            run, "square GEMM", [compare("product", pair[0] @ pair[1], got, case.dtype)]
        )
    source = _cast(rng.standard_normal(case.size), case.dtype)
    if case.target == "numpy":
        dest = np.empty_like(source)
        run, fetch = (lambda: np.copyto(dest, source)), (lambda: dest)
    elif case.target.startswith("torch-"):
        import torch

        device = _torch_device(case)
        src = torch.as_tensor(source, device=device)
        dst, sync = torch.empty_like(src), _torch_sync(device)
        run, fetch = (lambda: (dst.copy_(src), sync())), (lambda: dst.cpu().numpy())
    elif case.target == "cupy":
        cupy = _cupy()
        src, sync = cupy.asarray(source), cupy.cuda.Device().synchronize
        dst = cupy.empty_like(src)
        run, fetch = (lambda: (cupy.copyto(dst, src), sync())), (lambda: cupy.asnumpy(dst))
    else:
        raise NotSupported(f"{case.target} has no bandwidth probe")
    run()
    return Workload(run, "array copy", [compare("copy", source, fetch(), case.dtype)])


# ---- minGRU --------------------------------------------------------------------------------


def _mingru(case: BenchCase) -> Workload:
    weights = mingru.init_weights(case.input_size, case.hidden, case.layers, SEED, "float32")
    weights64 = {k: v.astype(np.float64) for k, v in weights.items()}
    x64 = float32_exact(
        np.random.default_rng(SEED + 1).standard_normal((case.steps, case.batch, case.input_size))
    )
    ref_y, ref_h = mingru.forward_sequential(weights64, x64)
    params = {k: _cast(v, case.dtype) for k, v in weights64.items()}
    x, sequential = _cast(x64, case.dtype), case.mode == "sequential"
    form = "step loop" if sequential else "parallel scan (log2 T rounds)"
    if case.target in ("numpy", "cupy"):
        fn = mingru.forward_sequential if sequential else mingru.forward_parallel
        if case.target == "cupy":
            cupy = _cupy()
            params = {k: cupy.asarray(v) for k, v in params.items()}
            xg, sync = cupy.asarray(x), cupy.cuda.Device().synchronize
            run = lambda: (fn(params, xg), sync())[0]  # noqa: E731
            fetch = lambda out: [cupy.asnumpy(v) for v in out]  # noqa: E731
        else:
            run, fetch = (lambda: fn(params, x)), (lambda out: out)
        impl = f"minGRU {form}, {'CuPy' if case.target == 'cupy' else 'NumPy'}"
    elif case.target.startswith("tf-"):
        from backends.tf_backend import tf

        mode = case.target.split("-", 1)[1]
        forward, xt = mingru.tf_forward(params, mode), tf.constant(x)
        run = lambda: [t.numpy() for t in forward(xt, sequential)]  # noqa: E731
        fetch = lambda out: out  # noqa: E731
        impl = f"minGRU {form}, TF {mode}"
    else:
        import torch

        device = _torch_device(case)
        module = mingru.torch_module(params, device)
        compiled = {"torch-cpu-compile": "default", "torch-cuda-graphs": "reduce-overhead"}
        if case.target in compiled:
            mode = compiled[case.target]
            module = torch.compile(module, mode=None if mode == "default" else mode)
        xt, sync = torch.as_tensor(x, device=device), _torch_sync(device)

        def run():
            with torch.inference_mode():
                out = module(xt, sequential)
            sync()
            return out

        fetch = lambda out: [t.cpu().numpy() for t in out]  # noqa: E731
        impl = f"minGRU {form}, torch" + (" compiled" if case.target in compiled else "")
    y, h = fetch(run())
    checks = [compare("y", ref_y, y, case.dtype), compare("h_n", ref_h, h, case.dtype)]
    return Workload(run, impl, checks, digest_arrays(weights))
