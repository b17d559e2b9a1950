"""PyTorch: nn.RNN / nn.LSTM / nn.GRU (+ nn.Linear head) built from the canonical weights.

torch keeps ONNX's two biases (bias_ih = Wb, bias_hh = Rb) and computes the GRU in the
linear_before_reset=1 form, so the mapping is a gate permutation and nothing else: exact both ways.
`sequence_lens` go through packed sequences, which give ONNX's semantics (zeros at padded steps,
final state at each sample's last valid step, reverse direction starting there).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness.model.layouts import reorder_gates
from harness.model.outputs import Outputs
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights

MODULES = {Cell.RNN: nn.RNN, Cell.LSTM: nn.LSTM, Cell.GRU: nn.GRU}
CANONICAL_TO_TORCH = {"W": "weight_ih", "R": "weight_hh", "Wb": "bias_ih", "Rb": "bias_hh"}


class RecurrentModel(nn.Module):
    """The canonical model as a torch module: rnn (+ head on the last layer's final states)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        extra = {"nonlinearity": "tanh"} if spec.cell is Cell.RNN else {}
        self.rnn = MODULES[spec.cell](
            spec.input_size,
            spec.hidden_size,
            num_layers=spec.num_layers,
            bidirectional=spec.bidirectional,
            batch_first=spec.batch_first,
            **extra,
        )
        self.head = None
        if spec.head is not None:
            self.head = nn.Linear(spec.num_directions * spec.hidden_size, spec.head.units)

    def forward(self, x, lengths=None, h0=None, c0=None):
        spec = self.spec
        state = h0
        if spec.cell is Cell.LSTM and (h0 is not None or c0 is not None):
            state = (
                torch.zeros_like(c0) if h0 is None else h0,
                torch.zeros_like(h0) if c0 is None else c0,
            )
        if lengths is not None:
            packed = pack_padded_sequence(x, lengths, spec.batch_first, enforce_sorted=False)
            packed_y, state = self.rnn(packed, state)
            T = x.shape[1 if spec.batch_first else 0]
            y, _ = pad_packed_sequence(packed_y, spec.batch_first, total_length=T)
        else:
            y, state = self.rnn(x, state)
        h_n, c_n = state if spec.cell is Cell.LSTM else (state, None)
        head = None
        if self.head is not None:
            D = spec.num_directions
            head = self.head(h_n[-D:].permute(1, 0, 2).reshape(h_n.shape[1], -1))
            if spec.head.activation == "softmax":
                head = torch.softmax(head, dim=-1)
        return y, h_n, c_n, head


def _param_names(spec: ModelSpec):
    """(canonical name, direction, torch name) for every recurrent parameter."""
    for layer in range(spec.num_layers):
        for d in range(spec.num_directions):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            for key, torch_key in CANONICAL_TO_TORCH.items():
                yield f"l{layer}.{key}", d, f"rnn.{torch_key}{suffix}"


def to_torch_state_dict(weights: CanonicalWeights) -> dict[str, np.ndarray]:
    spec = weights.spec
    state = {
        torch_name: reorder_gates(weights[name][d], spec.cell, "onnx", "torch")
        for name, d, torch_name in _param_names(spec)
    }
    if spec.head is not None:
        state["head.weight"], state["head.bias"] = weights["head.W"], weights["head.b"]
    return state


def from_torch_state_dict(spec: ModelSpec, state) -> CanonicalWeights:
    """Canonical weights from a RecurrentModel's state_dict (or nn.RNN/LSTM/GRU's, prefixed
    'rnn.'), tensors or arrays. canonical -> torch -> canonical is exact."""

    def array(key):
        if key not in state:
            raise NotSupported(f"state_dict has no {key!r}: not a {spec.cell.value} like {spec}")
        value = state[key]
        return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value

    arrays: dict[str, list] = {}
    for name, _, torch_name in _param_names(spec):
        block = reorder_gates(array(torch_name), spec.cell, "torch", "onnx")
        arrays.setdefault(name, []).append(block.astype(spec.dtype))
    out = {name: np.stack(blocks) for name, blocks in arrays.items()}
    if spec.head is not None:
        out["head.W"], out["head.b"] = array("head.weight"), array("head.bias")
    return CanonicalWeights(spec, out)


def import_module(module: nn.Module, head: nn.Linear | None = None, activation="none"):
    """A user's nn.RNN/LSTM/GRU (and optional nn.Linear head) as (spec, canonical weights)."""
    cell = next((c for c, cls in MODULES.items() if type(module) is cls), None)
    if cell is None:
        raise NotSupported(f"{type(module).__name__} is not nn.RNN, nn.LSTM or nn.GRU")
    if cell is Cell.RNN and module.nonlinearity != "tanh":
        raise NotSupported(f"nn.RNN(nonlinearity={module.nonlinearity!r}): only tanh")
    if getattr(module, "proj_size", 0) or not module.bias:
        raise NotSupported("LSTM projections (proj_size) and bias=False are not supported")
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(module.weight_ih_l0.dtype)
    spec = ModelSpec(
        cell,
        module.input_size,
        module.hidden_size,
        num_layers=module.num_layers,
        bidirectional=module.bidirectional,
        batch_first=module.batch_first,
        dtype=dtype,
        head=None if head is None else Head(head.out_features, activation),
    )
    state = {f"rnn.{k}": v for k, v in module.state_dict().items()}
    if head is not None:
        state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    return spec, from_torch_state_dict(spec, state)


def set_cudnn_tf32(allowed: bool) -> None:
    """Set cuDNN's TF32 switch for the process before each call: torch's default (True) runs
    float32 RNNs in TF32 on Ampere and later (seen on an H200: y off by 3e-4, gradients by 6e-4
    scaled, far outside float32 parity). A global switch, not a scope, so that BPTT, which runs
    on the autograd engine's own thread, sees it too."""
    torch.backends.cudnn.allow_tf32 = allowed


class TorchBackend:
    """tf32: let cuDNN use TensorFloat-32 for float32 RNNs, as torch does by default
    (torch.backends.cudnn.allow_tf32 is True). Off unless asked: TF32 keeps 10 mantissa bits,
    which is far outside float32 parity; the torch-cuda-tf32 backend shows by how much."""

    def __init__(self, device: str = "cpu", tf32: bool = False):
        self.device, self.tf32 = device, tf32
        self.name = f"torch-{device}" + ("-tf32" if tf32 else "")

    def unavailable_reason(self) -> str | None:
        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device (torch.cuda.is_available() is False)"
        return None

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedTorch:
        return PreparedTorch(spec, weights, self.device, self.tf32)


class PreparedTorch:
    def __init__(self, spec: ModelSpec, weights: CanonicalWeights, device: str, tf32=False):
        self.spec, self.device = spec, torch.device(device)
        self.apply_tf32 = lambda: set_cudnn_tf32(tf32)  # asserted again before every call
        self.apply_tf32()
        self.dtype = getattr(torch, spec.dtype)
        self.model = RecurrentModel(spec).to(device=self.device, dtype=self.dtype)
        arrays = to_torch_state_dict(weights)
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        # Left in training mode: without dropout eval() changes nothing numerically, and
        # cuDNN refuses RNN backward in eval mode ("can only be called in training mode").

    def _tensor(self, array, requires_grad=False):
        if array is None:
            return None
        t = torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device)
        return t.requires_grad_(requires_grad)

    def _lengths(self, seq_lens):
        return (
            None if seq_lens is None else torch.as_tensor(np.asarray(seq_lens), dtype=torch.int64)
        )

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs:
        self.apply_tf32()
        with torch.inference_mode():
            out = self.model(
                self._tensor(x), self._lengths(seq_lens), self._tensor(h0), self._tensor(c0)
            )
        return Outputs(*(None if t is None else t.cpu().numpy() for t in out))

    def runner(self, x, compile_mode: str | None = None):
        """(run, to_outputs) for timing: run() is one forward on a tensor made once, with the
        CUDA sync inside; compile_mode "default" or "reduce-overhead" (CUDA graphs) wraps the
        model in torch.compile first. Puts the model in eval mode: call grad() on another one."""
        model = self.model.eval()  # inference: cuDNN keeps no reserve space for a backward pass
        if compile_mode is not None:
            model = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
        xt = self._tensor(x)
        cuda = self.device.type == "cuda"

        def run():
            with torch.inference_mode():
                out = model(xt)
            if cuda:
                torch.cuda.synchronize()
            return out

        def to_outputs(out) -> Outputs:
            return Outputs(*(None if t is None else t.cpu().numpy() for t in out))

        return run, to_outputs

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        spec = self.spec
        B = np.shape(x)[0 if spec.batch_first else 1]
        state_shape = (spec.num_layers * spec.num_directions, B, spec.hidden_size)
        inputs = {"x": x, "h0": np.zeros(state_shape) if h0 is None else h0}
        if spec.cell is Cell.LSTM:
            inputs["c0"] = np.zeros(state_shape) if c0 is None else c0
        leaves = {k: self._tensor(v, requires_grad=True) for k, v in inputs.items()}
        self.model.zero_grad(set_to_none=True)
        self.apply_tf32()
        outputs = dict(
            zip(
                ("y", "h_n", "c_n", "head"),
                self.model(leaves["x"], self._lengths(seq_lens), leaves["h0"], leaves.get("c0")),
                strict=True,
            )
        )
        loss = sum((outputs[k] * self._tensor(v)).sum() for k, v in cotangents.items())
        loss.backward()
        grads = {k: p.grad for k, p in self.model.named_parameters()}
        canonical = from_torch_state_dict(spec, grads)
        result = {k: np.array(v) for k, v in canonical.items()}
        result.update({k: t.grad.cpu().numpy() for k, t in leaves.items()})
        return result

    def train_sgd(self, xs, ys, lr: float, max_norm: float, frozen=()):
        """torch.optim.SGD on mean squared error of the head, clipped as harness.model.optim says;
        `frozen` names canonical biases ("l0.Rb") that stay fixed."""
        frozen_torch = {t for n, _, t in _param_names(self.spec) if n in frozen}
        params = [p for n, p in self.model.named_parameters() if n not in frozen_torch]
        optimizer = torch.optim.SGD(params, lr=lr)
        losses = []
        for x, y in zip(xs, ys, strict=True):
            optimizer.zero_grad(set_to_none=True)
            self.apply_tf32()
            head = self.model(self._tensor(x))[3]
            loss = torch.mean((head - self._tensor(y)) ** 2)
            loss.backward()
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
            scale = max_norm / torch.clamp(norm, min=max_norm)
            for p in params:
                p.grad.mul_(scale)
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses, from_torch_state_dict(self.spec, self.model.state_dict())
