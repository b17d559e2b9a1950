"""torch-cpu-script: the canonical torch model as a TorchScript trace (torch.jit.trace, then
torch.jit.freeze), over a whole sequence (forward) or one step with the state carried (the
stream and load modes, backends/streaming/torch_step.py)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from backends.streaming.torch_step import synchronizer
from backends.torch_backend import PreparedTorch, TorchBackend
from harness.model.outputs import Outputs
from harness.model.spec import Cell


class SequenceModule(nn.Module):
    """The whole-sequence model with tensor outputs only (what a trace needs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(t for t in self.model(x) if t is not None)


class TorchScriptBackend(TorchBackend):
    """torch-cpu-script: the model as a TorchScript trace, a whole sequence or one step."""

    def __init__(self, device: str = "cpu"):
        super().__init__(device)
        self.impl_label = "torch TorchScript"

    def build(self, spec, weights) -> PreparedTorchScript:
        return self.named(PreparedTorchScript(spec, weights, self.device))


class PreparedTorchScript(PreparedTorch):
    step_form = "trace"

    def __init__(self, spec, weights, device: str):
        super().__init__(spec, weights, device)
        self.impl_class = f"TorchScript trace (frozen) of the {self.impl_class}"

    def forward_runner(self, x):
        """run() is the frozen trace of the whole-sequence model, on a tensor made once."""
        xt, sync = self._tensor(x), synchronizer(self.device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # as torch_step's trace
            traced = torch.jit.freeze(torch.jit.trace(SequenceModule(self.model).eval(), (xt,)))

        def run():
            with torch.inference_mode():
                out = traced(xt)
            sync()
            return out

        def to_outputs(out) -> Outputs:
            arrays = [t.cpu().numpy() for t in out]
            lstm = self.spec.cell is Cell.LSTM
            c_n = arrays[2] if lstm else None
            head = arrays[-1] if self.spec.head is not None else None
            return Outputs(arrays[0], arrays[1], c_n, head)

        return run, to_outputs

    def describe(self, run) -> str:
        return self.impl_class
