"""The NumPy oracle behind the Backend interface, on NumPy or on CuPy (the same code: the
reference is written against the array namespace of its inputs)."""

from __future__ import annotations

import numpy as np

from backends import mingru, numpy_ref
from harness.model.optim import clip_by_global_norm
from harness.model.outputs import Outputs
from harness.model.protocol import BaseBackend, BasePrepared, NotSupported
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights

LABELS = {"numpy": ("NumPy", "BLAS"), "cupy": ("CuPy", "cuBLAS")}


def _cupy():
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if exc.name != "cupy":
            raise
        raise NotSupported("CuPy is not installed (GPU machines only)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver: CuPy raises its own runtime error types
        raise NotSupported(f"CuPy finds no CUDA device: {str(exc).splitlines()[0]}") from None
    if count < 1:
        raise NotSupported("CuPy finds no CUDA device")
    return cupy


class _Arrays:
    """Moving arrays to the namespace and back, and the device sync inside a timed call."""

    def __init__(self, xp_name: str):
        self.name = xp_name
        self.xp = _cupy() if xp_name == "cupy" else np
        gpu = xp_name == "cupy"
        self.sync = self.xp.cuda.Device().synchronize if gpu else (lambda: None)
        self.to_numpy = self.xp.asnumpy if gpu else np.asarray

    def put(self, array, dtype=None, copy=False):
        out = self.xp.ascontiguousarray(self.xp.asarray(array, dtype=dtype))
        return out.copy() if copy and out is array else out


class NumpyBackend(BaseBackend):
    def __init__(self, xp: str = "numpy"):
        self.xp_name = xp
        self.impl_label = LABELS[xp][0]
        self.product_label = f"{xp}.matmul ({LABELS[xp][1]})"

    def unavailable_reason(self) -> str | None:
        if self.xp_name == "cupy":
            try:
                _cupy()
            except NotSupported as exc:
                return str(exc)
        return None

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedNumpy:
        return self.named(PreparedNumpy(spec, weights, self.xp_name))

    def product_runner(self, pairs, dtype: str):
        arrays = _Arrays(self.xp_name)
        xp = arrays.xp
        operands = [(arrays.put(a, dtype), arrays.put(b, dtype)) for a, b in pairs]
        outs = [xp.empty((a.shape[0], b.shape[1]), dtype=dtype) for a, b in operands]

        def run():
            for (a, b), out in zip(operands, outs, strict=True):
                xp.matmul(a, b, out=out)
            arrays.sync()
            return outs

        return run, lambda result: [arrays.to_numpy(c) for c in result]

    def copy_runner(self, source):
        arrays = _Arrays(self.xp_name)
        src = arrays.put(source)
        dst = arrays.xp.empty_like(src)

        def run():
            arrays.xp.copyto(dst, src)
            arrays.sync()
            return dst

        return run, arrays.to_numpy

    def parallel_in_time_runner(self, spec, weights, x, method, tol, max_iter):
        from backends import parallel_in_time

        device = "cuda" if self.xp_name == "cupy" else "cpu"
        return parallel_in_time.make_runner(
            spec, weights, x, method, tol, max_iter, device, framework="numpy"
        )

    def parallel_in_time_iteration(self, method: str) -> str:
        from backends import parallel_in_time

        device = "cuda" if self.xp_name == "cupy" else "cpu"
        return parallel_in_time.describe_iteration(method, "numpy", device)

    def mingru_runner(self, weights, x, sequential: bool):
        arrays = _Arrays(self.xp_name)
        params = {k: arrays.put(v) for k, v in weights.items()}
        xg = arrays.put(x)
        forward = mingru.forward_sequential if sequential else mingru.forward_parallel

        def run():
            out = forward(params, xg)
            arrays.sync()
            return out

        return run, lambda out: [arrays.to_numpy(v) for v in out]


class PreparedNumpy(BasePrepared):
    def __init__(self, spec: ModelSpec, weights: CanonicalWeights, xp: str = "numpy"):
        self.arrays = _Arrays(xp)
        self.spec = spec
        self.params = {k: self.arrays.put(v, copy=True) for k, v in weights.items()}
        library, blas = LABELS[xp]
        self.impl_class = f"{library} step loop (one {blas} GEMM per step)"
        self.train_impl_class = f"{library} forward + hand-written BPTT"
        self.train_input_grad = True  # its BPTT returns dx and dh0 as well

    def _put(self, array):
        return None if array is None else self.arrays.put(array)

    def _outputs(self, out: Outputs) -> Outputs:
        return Outputs(**{k: self.arrays.to_numpy(v) for k, v in out.as_dict().items()})

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs:
        out = numpy_ref.forward(
            self.spec, self.params, self._put(x), seq_lens, self._put(h0), self._put(c0)
        )
        return self._outputs(out)

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        _, tape = numpy_ref.forward_with_tape(
            self.spec, self.params, self._put(x), seq_lens, self._put(h0), self._put(c0)
        )
        d = {f"d{k}": self._put(v) for k, v in cotangents.items()}
        grads = numpy_ref.backward(self.params, tape, **d)
        return {k: self.arrays.to_numpy(v) for k, v in grads.items()}

    def forward_runner(self, x):
        xg = self.arrays.put(x)

        def run():
            out = numpy_ref.forward(self.spec, self.params, xg)
            self.arrays.sync()
            return out

        return run, self._outputs

    def train_step_runner(self, x, goal, lr: float):
        """One unclipped SGD step on mean((y - goal)^2), the weights updated in place."""
        xg, goal = self.arrays.put(x), self.arrays.put(goal)
        params = self.params

        def run():
            out, tape = numpy_ref.forward_with_tape(self.spec, params, xg)
            error = out.y - goal
            grads = numpy_ref.backward(params, tape, dy=(2.0 / error.size) * error)
            for name, g in grads.items():
                if name in params:
                    params[name] -= params[name].dtype.type(lr) * g
            loss = float(self.arrays.xp.mean(error**2))
            self.arrays.sync()
            return loss

        def fetch(loss):
            return loss, {k: self.arrays.to_numpy(v) for k, v in params.items()}

        return run, fetch

    def train_sgd(self, xs, ys, lr: float, max_norm: float, frozen=()):
        """SGD on mean squared error of the head; returns the losses and the final weights.
        `frozen` names weights that stay fixed (and count nowhere, the clipping norm included)."""
        losses = []
        for x, y in zip(xs, ys, strict=True):
            out, tape = numpy_ref.forward_with_tape(self.spec, self.params, x)
            error = out.head - y
            losses.append(float(np.mean(error**2)))
            grads = numpy_ref.backward(self.params, tape, dhead=2 * error / error.size)
            grads = clip_by_global_norm(
                {k: grads[k] for k in self.params if k not in frozen}, max_norm
            )
            for k, g in grads.items():
                self.params[k] = (self.params[k] - lr * g).astype(g.dtype)
        return losses, CanonicalWeights(self.spec, self.params)

    def step_runner(self):
        from backends.streaming.numpy_step import numpy_step_runner

        return numpy_step_runner(self)
