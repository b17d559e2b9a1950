"""The NumPy oracle behind the Backend interface."""

from __future__ import annotations

import numpy as np

from backends import numpy_ref
from harness.model.optim import clip_by_global_norm
from harness.model.outputs import Outputs
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights


class NumpyBackend:
    name = "numpy"

    def unavailable_reason(self) -> str | None:
        return None

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedNumpy:
        return PreparedNumpy(spec, weights)


class PreparedNumpy:
    def __init__(self, spec: ModelSpec, weights: CanonicalWeights):
        self.spec, self.params = spec, dict(weights)

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs:
        return numpy_ref.forward(self.spec, self.params, x, seq_lens, h0, c0)

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        _, tape = numpy_ref.forward_with_tape(self.spec, self.params, x, seq_lens, h0, c0)
        d = {f"d{k}": v for k, v in cotangents.items()}
        return numpy_ref.backward(self.params, tape, **d)

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
