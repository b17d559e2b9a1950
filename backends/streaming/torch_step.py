"""The torch step: each layer of the model's own nn.RNN / nn.LSTM / nn.GRU (its parameters as
they are) stepped by ATen's single-step cell (aten::rnn_tanh_cell, lstm_cell, gru_cell: the
kernels nn.RNNCell, nn.LSTMCell and nn.GRUCell run), then the head; in one of three forms:
eager, torch.compile (inductor), or a TorchScript trace (torch.jit.trace, frozen: the
torch-cpu-script backend, backends/torch_script.py).

Why not the nn.LSTM module on a sequence of one step: on the CPU it runs oneDNN's fused RNN
layer (aten::mkldnn_rnn_layer), which prepares its weights for the primitive on every call,
and with T = 1 nothing amortises that: an LSTM H=256 step took 6x the single-step cell's time
here (torch 2.13, one thread)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from backends.streaming.base import StepRunner, check_streamable
from harness.model.spec import Cell

FORMS = ("eager", "compile", "trace")
# ATen's single-step cells (an nn.LSTM on a one-step sequence runs oneDNN's fused layer, which
# prepares its weights on every call)
CELLS: dict[Cell, Callable[..., Any]] = {
    Cell.RNN: torch.rnn_tanh_cell,
    Cell.LSTM: torch.lstm_cell,
    Cell.GRU: torch.gru_cell,
}


class StepModule(nn.Module):
    """One step: x [B, I] and the state, h of each layer (then c of each layer, LSTM), each
    [B, H] -> y [B, H], the new state in the same order, then the head's output if the model
    has one. Tensors only, in and out, so that torch.jit.trace takes it as it is."""

    def __init__(self, model):
        super().__init__()
        self.rnn, self.head, self.spec = model.rnn, model.head, model.spec
        self.softmax = model.head is not None and model.spec.head.activation == "softmax"
        self.step = CELLS[model.spec.cell]

    def forward(self, x, *state):
        L, lstm = self.spec.num_layers, self.spec.cell is Cell.LSTM
        inp, hs, cs = x, [], []
        for k in range(L):
            weights = [
                getattr(self.rnn, f"{name}_l{k}")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            if lstm:
                h, c = self.step(inp, (state[k], state[L + k]), *weights)
                cs.append(c)
            else:
                h = self.step(inp, state[k], *weights)
            hs.append(h)
            inp = h
        out = (inp, *hs, *cs)
        if self.head is not None:
            head = self.head(inp)
            out += (torch.softmax(head, dim=-1) if self.softmax else head,)
        return out


def torch_step_runner(prepared, form: str) -> StepRunner:
    """prepared: a backends.torch_backend.PreparedTorch; form: eager | compile | trace."""
    spec, device, dtype = prepared.spec, prepared.device, prepared.dtype
    check_streamable(spec)
    if form not in FORMS:
        raise ValueError(f"torch step form {form!r}: allowed {', '.join(FORMS)}")
    lstm, sync = spec.cell is Cell.LSTM, synchronizer(device)
    L = spec.num_layers
    module = StepModule(prepared.model).eval()

    def tensor(array):
        return torch.as_tensor(array, dtype=dtype).to(device)

    def to_state(h, c):
        return tuple(tensor(a[k]) for a in ((h, c) if lstm else (h,)) for k in range(L))

    def zero_state(batch):
        shape = (batch, spec.hidden_size)
        return tuple(torch.zeros(shape, dtype=dtype, device=device) for _ in range(L * (1 + lstm)))

    run = _form(module, form, tensor(np.zeros((1, spec.input_size))), zero_state(1))
    n = L * (1 + lstm)

    def step(x_t, state):
        prepared.apply_tf32()
        with torch.inference_mode():
            out = run(tensor(x_t), *state)
        sync()
        head = out[-1].cpu().numpy() if spec.head is not None else None
        return (out[0].cpu().numpy(), head), out[1 : 1 + n]

    def from_state(state):
        arrays = [s.cpu().numpy() for s in state]
        h = np.stack(arrays[:L])
        return h, (np.stack(arrays[L:]) if lstm else None)

    def noop(x_t):
        with torch.inference_mode():
            out = tensor(x_t).add(0)
        sync()
        return out.cpu().numpy()

    cell = CELLS[spec.cell].__name__
    kernel = f"aten::{cell} per layer of the nn.{spec.cell.name} ({device.type})"
    label = {"eager": kernel, "compile": f"torch.compile around {kernel}"}
    label["trace"] = f"TorchScript trace (frozen) of {kernel}"
    return StepRunner(
        step,
        zero_state,
        to_state,
        from_state,
        noop,
        label[form],
        "torch: the input made a tensor, one add of 0, the output out",
    )


def synchronizer(device: torch.device):
    """What makes a call wait for its device work (nothing on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _form(module: nn.Module, form: str, x, state):
    if form == "compile":
        return torch.compile(module)
    if form == "trace":
        # nn.RNN's check of the state's size is Python the trace cannot follow: it warns that
        # the check becomes a constant (the check, not the computation: any batch size runs)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return torch.jit.freeze(torch.jit.trace(module, (x, *state)))
    return module
