"""PyTorch's form of the canonical model: nn.RNN / nn.LSTM / nn.GRU (+ nn.Linear head), and
the exact mapping of weights both ways.

torch keeps ONNX's two biases (bias_ih = Wb, bias_hh = Rb) and computes the GRU in the
linear_before_reset=1 form, so the mapping is a gate permutation and nothing else: exact both ways.
`sequence_lens` go through packed sequences, which give ONNX's semantics (zeros at padded steps,
final state at each sample's last valid step, reverse direction starting there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness.model.layouts import reorder_gates
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights

MODULES = {Cell.RNN: nn.RNN, Cell.LSTM: nn.LSTM, Cell.GRU: nn.GRU}
CANONICAL_TO_TORCH = {"W": "weight_ih", "R": "weight_hh", "Wb": "bias_ih", "Rb": "bias_hh"}


class RecurrentModel(nn.Module):
    """The canonical model as a torch module: rnn (+ head on the last layer's final states)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        if spec.variants:
            raise NotSupported(
                f"PyTorch's nn.{spec.cell.name} has no {spec.describe_variants()} "
                "(it computes the canonical cell only)"
            )
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
            if spec.head is not None and spec.head.activation == "softmax":
                head = torch.softmax(head, dim=-1)
        return y, h_n, c_n, head


def param_names(spec: ModelSpec):
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
        for name, d, torch_name in param_names(spec)
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
    for name, _, torch_name in param_names(spec):
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
    rnn: Any = module  # nn.RNNBase: its sizes are plain attributes, not submodules
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(rnn.weight_ih_l0.dtype)
    if dtype is None:
        raise NotSupported(f"weights of dtype {rnn.weight_ih_l0.dtype}: allowed float32, float64")
    spec = ModelSpec(
        cell,
        rnn.input_size,
        rnn.hidden_size,
        num_layers=rnn.num_layers,
        bidirectional=rnn.bidirectional,
        batch_first=rnn.batch_first,
        dtype=dtype,
        head=None if head is None else Head(head.out_features, activation),
    )
    state = {f"rnn.{k}": v for k, v in module.state_dict().items()}
    if head is not None:
        state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    return spec, from_torch_state_dict(spec, state)
