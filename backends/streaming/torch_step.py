"""The torch step: the model's own nn.RNN / nn.LSTM / nn.GRU (and head) called on one step with
the carried state, in one of three forms: eager, torch.compile (inductor), or a TorchScript trace
(torch.jit.trace, frozen: the torch-cpu-script backend, backends/torch_script.py)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from backends.streaming.base import StepRunner, check_streamable
from harness.model.spec import Cell

FORMS = ("eager", "compile", "trace")


class StepModule(nn.Module):
    """One step: x [1, B, I] ([B, 1, I] batch-first) and the state tensors h (, c), each
    [L, B, H] -> y [B, H], the new state, then the head's output if the model has one. Tensors
    only, in and out, so that torch.jit.trace takes it as it is."""

    def __init__(self, model):
        super().__init__()
        self.rnn, self.head, self.spec = model.rnn, model.head, model.spec
        self.softmax = model.head is not None and model.spec.head.activation == "softmax"

    def forward(self, x, *state):
        lstm = self.spec.cell is Cell.LSTM
        y, new = self.rnn(x, (state[0], state[1]) if lstm else state[0])
        new = tuple(new) if lstm else (new,)
        out = (y[:, 0] if self.spec.batch_first else y[0], *new)
        if self.head is not None:
            head = self.head(new[0][-1])
            out += (torch.softmax(head, dim=-1) if self.softmax else head,)
        return out


def torch_step_runner(prepared, form: str) -> StepRunner:
    """prepared: a backends.torch_backend.PreparedTorch; form: eager | compile | trace."""
    spec, device, dtype = prepared.spec, prepared.device, prepared.dtype
    check_streamable(spec)
    if form not in FORMS:
        raise ValueError(f"torch step form {form!r}: allowed {', '.join(FORMS)}")
    lstm, sync = spec.cell is Cell.LSTM, synchronizer(device)
    module = StepModule(prepared.model).eval()

    def tensor(array):
        return torch.as_tensor(array, dtype=dtype).to(device)

    def to_state(h, c):
        return (tensor(h), tensor(c)) if lstm else (tensor(h),)

    def zero_state(batch):
        shape = (spec.num_layers, batch, spec.hidden_size)
        return tuple(torch.zeros(shape, dtype=dtype, device=device) for _ in range(1 + lstm))

    def step_input(x_t):
        x = tensor(x_t)
        return x[:, None] if spec.batch_first else x[None]

    run = _form(module, form, step_input(np.zeros((1, spec.input_size))), zero_state(1))

    def step(x_t, state):
        prepared.apply_tf32()
        with torch.inference_mode():
            out = run(step_input(x_t), *state)
        sync()
        head = out[-1].cpu().numpy() if spec.head is not None else None
        return (out[0].cpu().numpy(), head), out[1 : 2 + lstm]

    def from_state(state):
        arrays = [s.cpu().numpy() for s in state]
        return arrays[0], (arrays[1] if lstm else None)

    def noop(x_t):
        with torch.inference_mode():
            out = tensor(x_t).add(0)
        sync()
        return out.cpu().numpy()

    kernel = f"nn.{spec.cell.name} on one step ({device.type})"
    label = {"eager": kernel, "compile": f"torch.compile around the {kernel}"}
    label["trace"] = f"TorchScript trace (frozen) of the {kernel}"
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
