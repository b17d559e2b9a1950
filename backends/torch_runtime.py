"""A torch file as it runs: a TorchScript module or an ExportedProgram's module, on the CPU in
inference mode, its outputs flattened to output_0, output_1, ... (harness/model_file/runtime.py
describes the shape every file runtime has)."""

from __future__ import annotations

import ntpath

import numpy as np
import torch


def short(exc: BaseException) -> str:
    """An exception's first line, at most 160 characters."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


class TorchRuntime:
    """A TorchScript module or an ExportedProgram's module, run on the CPU in inference mode;
    its outputs (a tensor, or nested tuples of them) flattened to output_0, output_1, ..."""

    nodes = ()
    output_T = None

    def __init__(self, path: str, kind: str, module, batch_first: bool, T, B, dtype=None):
        self.path, self.kind, self.module = path, kind, module
        self.label = ntpath.basename(path)  # either separator
        self.batch_first, self.T, self.B = batch_first, T, B
        self.dtype = dtype or next((p.dtype for p in module.parameters()), torch.float32)

    def _tensor(self, x):
        """Time-major x [T, B, I] (or tokens [T, B]) as the module takes it."""
        x = np.asarray(x)
        x = np.ascontiguousarray(np.swapaxes(x, 0, 1) if self.batch_first else x)
        return torch.as_tensor(x, dtype=torch.long if x.dtype.kind in "iu" else self.dtype)

    def run(self, x, rng=None):
        from harness.model_file.runtime import RunResult

        run, fetch = self.runner(x)
        try:
            return RunResult(fetch(run()))
        except Exception as exc:
            raise RuntimeError(f"{self.label} fails on x {list(x.shape)}: {short(exc)}") from None

    def runner(self, x):
        xt, module = self._tensor(x), self.module

        def run():
            with torch.inference_mode():
                return module(xt)

        return run, lambda out: {f"output_{k}": v for k, v in enumerate(flatten(out))}

    def set_threads(self, n: int) -> None:
        torch.set_num_threads(n)


def flatten(value) -> list[np.ndarray]:
    if isinstance(value, torch.Tensor):
        return [value.detach().cpu().numpy()]
    if isinstance(value, list | tuple):
        return [a for v in value for a in flatten(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in flatten(v)]
    return []
