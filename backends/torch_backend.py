"""PyTorch: the canonical model as torch modules (backends/torch_model.py) on the CPU or CUDA,
eager or under torch.compile ("default", or "reduce-overhead": CUDA graphs)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from backends import mingru
from backends.torch_model import (
    RecurrentModel,
    from_torch_state_dict,
    import_module,
    param_names,
    to_torch_state_dict,
)
from harness.model.outputs import Outputs
from harness.model.protocol import BaseBackend, BasePrepared, NotSupported
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import CanonicalWeights

__all__ = ["TorchBackend", "PreparedTorch", "import_module", "from_torch_state_dict"]

# What was asked for; `describe` replaces it by what torch's profiler saw run (KERNELS).
CPU_CLASS = {c: f"nn.{c.name} on the CPU" for c in Cell}
KERNELS = {
    "aten::mkldnn_rnn_layer": "oneDNN fused RNN layer (aten::mkldnn_rnn_layer)",
    "aten::_cudnn_rnn": "cuDNN fused RNN (aten::_cudnn_rnn)",
    "aten::addmm": "ATen step loop (aten::addmm, {count} calls)",
}
COMPILE_LABEL = {"default": "torch.compile (inductor)", "reduce-overhead": "CUDA graphs"}


def set_cudnn_tf32(allowed: bool) -> None:
    """Set cuDNN's TF32 switch for the process before each call: torch's default (True) runs
    float32 RNNs in TF32 on Ampere and later (seen on an H200: y off by 3e-4, gradients by 6e-4
    scaled, far outside float32 parity). A global switch, not a scope, so that BPTT, which runs
    on the autograd engine's own thread, sees it too."""
    torch.backends.cudnn.allow_tf32 = allowed


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


class TorchBackend(BaseBackend):
    """tf32: let cuDNN (and cuBLAS, for the product) use TensorFloat-32 for float32, as torch
    does by default for cuDNN. Off unless asked: TF32 keeps 10 mantissa bits, far outside
    float32 parity; the torch-cuda-tf32 backend shows by how much."""

    def __init__(
        self,
        device: str = "cpu",
        tf32: bool = False,
        compile_mode: str | None = None,
        gemm_library: str = "aten",
    ):
        self.device, self.tf32, self.compile_mode = device, tf32, compile_mode
        self.gemm_library = gemm_library  # aten: torch.matmul (MKL on x86); onednn: mkldnn linear
        self.impl_label = "torch" + (" compiled" if compile_mode else "")
        self.product_label = (
            "oneDNN linear (torch.utils.mkldnn)"
            if gemm_library == "onednn"
            else f"torch.matmul ({'cuBLAS' if device == 'cuda' else 'MKL on x86 CPUs'})"
        )

    def unavailable_reason(self) -> str | None:
        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device (torch.cuda.is_available() is False)"
        return None

    def set_threads(self, n: int) -> dict:
        torch.set_num_threads(n)
        if torch.get_num_interop_threads() != n:
            # torch fixes it once per process; a worker is fresh, a test process may not be:
            # what it really is gets recorded either way.
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(n)
        pools = {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
        return {"torch": pools}

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedTorch:
        return self.named(PreparedTorch(spec, weights, self.device, self.tf32, self.compile_mode))

    def _tensors(self, arrays, dtype: str):
        return [torch.as_tensor(a, dtype=getattr(torch, dtype), device=self.device) for a in arrays]

    def product_runner(self, pairs, dtype: str):
        if self.gemm_library == "onednn":
            return self._onednn_product_runner(pairs, dtype)
        torch.backends.cuda.matmul.allow_tf32 = self.tf32  # the float32 the RNNs are held to
        operands = [self._tensors(pair, dtype) for pair in pairs]
        outs = [a.new_empty((a.shape[0], b.shape[1])) for a, b in operands]
        sync = _sync(torch.device(self.device))

        def run():
            for (a, b), out in zip(operands, outs, strict=True):
                torch.matmul(a, b, out=out)
            sync()
            return outs

        return run, lambda result: [c.cpu().numpy() for c in result]

    def _onednn_product_runner(self, pairs, dtype: str):
        """oneDNN's own GEMM through a mkldnn linear layer (float32, CPU): on AMD Zen it beats
        torch.matmul's MKL sgemm by about 2x. It allocates each output (no out= form)."""
        import torch.utils.mkldnn as mkldnn

        if dtype != "float32" or self.device != "cpu":
            raise NotSupported(f"oneDNN's linear runs float32 on the CPU only, not {dtype}")
        layers, inputs = [], []
        for a, b in pairs:
            linear = torch.nn.Linear(b.shape[0], b.shape[1], bias=False)
            with torch.no_grad():
                linear.weight.copy_(torch.as_tensor(b, dtype=torch.float32).T)
            layers.append(mkldnn.to_mkldnn(linear))
            inputs.append(torch.as_tensor(a, dtype=torch.float32).to_mkldnn())

        def run():
            with torch.no_grad():
                return [layer(x) for layer, x in zip(layers, inputs, strict=True)]

        return run, lambda result: [c.to_dense().numpy() for c in result]

    def parallel_in_time_runner(self, spec, weights, x, method, tol, max_iter):
        from backends import parallel_in_time

        return parallel_in_time.make_runner(
            spec, weights, x, method, tol, max_iter, self.device, framework="torch"
        )

    def parallel_in_time_iteration(self, method: str) -> str:
        from backends import parallel_in_time

        return parallel_in_time.describe_iteration(method, "torch", self.device)

    def copy_runner(self, source):
        src = torch.as_tensor(source, device=self.device)
        dst, sync = torch.empty_like(src), _sync(src.device)

        def run():
            dst.copy_(src)
            sync()
            return dst

        return run, lambda result: result.cpu().numpy()

    def mingru_runner(self, weights, x, sequential: bool):
        module = mingru.torch_module(weights, self.device)
        if self.compile_mode is not None:
            mode = None if self.compile_mode == "default" else self.compile_mode
            module = torch.compile(module, mode=mode)
        xt, sync = torch.as_tensor(x, device=self.device), _sync(torch.device(self.device))

        def run():
            with torch.inference_mode():
                out = module(xt, sequential)
            sync()
            return out

        return run, lambda out: [t.cpu().numpy() for t in out]


class PreparedTorch(BasePrepared):
    def __init__(
        self,
        spec: ModelSpec,
        weights: CanonicalWeights,
        device: str,
        tf32=False,
        compile_mode: str | None = None,
    ):
        self.spec, self.device, self.compile_mode = spec, torch.device(device), compile_mode
        self.apply_tf32 = lambda: set_cudnn_tf32(tf32)  # asserted again before every call
        self.apply_tf32()
        self.dtype = getattr(torch, spec.dtype)
        self.model = RecurrentModel(spec).to(device=self.device, dtype=self.dtype)
        arrays = to_torch_state_dict(weights)
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        kernel = "cuDNN fused RNN" if self.device.type == "cuda" else CPU_CLASS[spec.cell]
        self.impl_class = kernel
        if compile_mode is not None:
            self.impl_class = f"{COMPILE_LABEL[compile_mode]} around the {kernel}"
        self.train_impl_class = f"torch autograd through the {kernel}"

    def _tensor(self, array, requires_grad=False):
        if array is None:
            return None
        t = torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device)
        return t.requires_grad_(requires_grad)

    def _lengths(self, seq_lens):
        if seq_lens is None:
            return None
        return torch.as_tensor(np.asarray(seq_lens), dtype=torch.int64)

    @staticmethod
    def _outputs(out) -> Outputs:
        return Outputs(*(None if t is None else t.detach().cpu().numpy() for t in out))

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs:
        self.apply_tf32()
        self.model.eval()
        with torch.inference_mode():
            out = self.model(
                self._tensor(x), self._lengths(seq_lens), self._tensor(h0), self._tensor(c0)
            )
        return self._outputs(out)

    def describe(self, run) -> str:
        """The kernel one call of `run` executed, as torch's profiler saw it; the label asked
        for, marked so, where the profiler sees none of the known kernels. The autograd
        profiler sees the same CPU-side ops as torch.profiler, which would import inductor
        first (about 2 s of every torch worker's start)."""
        try:
            with torch.autograd.profiler.profile() as prof:
                run()
            counts = {e.key: e.count for e in prof.key_averages()}
        except RuntimeError:  # a profiler already running, a graph replay it cannot see into
            counts = {}
        seen = next((k for k in KERNELS if k in counts), None)
        if seen is None:
            return f"{self.impl_class} (kernel not seen by the profiler)"
        kernel = KERNELS[seen].format(count=counts[seen])
        if self.compile_mode is not None:
            return f"{COMPILE_LABEL[self.compile_mode]} around the {kernel}"
        return kernel

    def forward_runner(self, x):
        """run() is one forward on a tensor made once, CUDA sync inside, in eval mode (cuDNN
        then keeps no reserve space for a backward pass), under torch.compile if asked."""
        model = self.model.eval()
        if self.compile_mode is not None:
            mode = None if self.compile_mode == "default" else self.compile_mode
            model = torch.compile(model, mode=mode)  # type: ignore[assignment]  # it runs as one
        xt, sync = self._tensor(x), _sync(self.device)

        def run():
            self.apply_tf32()
            with torch.inference_mode():
                out = model(xt)
            sync()
            return out

        return run, self._outputs

    def _train_mode(self):
        """Gradients need training mode: cuDNN refuses an RNN backward in eval mode."""
        self.apply_tf32()
        return self.model.train()

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        spec = self.spec
        B = np.shape(x)[0 if spec.batch_first else 1]
        state_shape = (spec.num_layers * spec.num_directions, B, spec.hidden_size)
        inputs = {"x": x, "h0": np.zeros(state_shape) if h0 is None else h0}
        if spec.cell is Cell.LSTM:
            inputs["c0"] = np.zeros(state_shape) if c0 is None else c0
        leaves = {k: self._tensor(v, requires_grad=True) for k, v in inputs.items()}
        model = self._train_mode()
        model.zero_grad(set_to_none=True)
        out = model(leaves["x"], self._lengths(seq_lens), leaves["h0"], leaves.get("c0"))
        outputs = dict(zip(("y", "h_n", "c_n", "head"), out, strict=True))
        loss = sum((outputs[k] * self._tensor(v)).sum() for k, v in cotangents.items())
        loss.backward()
        grads = {k: p.grad for k, p in model.named_parameters()}
        result = {k: np.array(v) for k, v in from_torch_state_dict(spec, grads).items()}
        result.update({k: t.grad.cpu().numpy() for k, t in leaves.items()})
        return result

    def train_step_runner(self, x, goal, lr: float):
        """run() is one torch.optim.SGD step on mean((y - goal)^2), CUDA sync inside."""
        model = self._train_mode()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        xt, gt, sync = self._tensor(x), self._tensor(goal), _sync(self.device)

        def run():
            optimizer.zero_grad(set_to_none=True)
            loss = torch.mean((model(xt)[0] - gt) ** 2)
            loss.backward()
            optimizer.step()
            sync()
            return loss.detach()

        def fetch(loss):
            return float(loss), dict(from_torch_state_dict(self.spec, model.state_dict()))

        return run, fetch

    def train_sgd(self, xs, ys, lr: float, max_norm: float, frozen=()):
        """torch.optim.SGD on mean squared error of the head, clipped as harness.model.optim
        says; `frozen` names canonical biases ("l0.Rb") that stay fixed."""
        frozen_torch = {t for n, _, t in param_names(self.spec) if n in frozen}
        model = self._train_mode()
        params = [p for n, p in model.named_parameters() if n not in frozen_torch]
        optimizer = torch.optim.SGD(params, lr=lr)
        losses = []
        for x, y in zip(xs, ys, strict=True):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.mean((model(self._tensor(x))[3] - self._tensor(y)) ** 2)
            loss.backward()
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
            scale = max_norm / torch.clamp(norm, min=max_norm)
            for p in params:
                p.grad.mul_(scale)
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses, from_torch_state_dict(self.spec, model.state_dict())

    step_form = "eager"  # or compile (compile_mode set), trace (backends/streaming/torch_step.py)

    def step_runner(self):
        from backends.streaming.torch_step import torch_step_runner

        return torch_step_runner(self, "compile" if self.compile_mode else self.step_form)
