"""The NumPy oracle behind the Backend interface."""

from __future__ import annotations

from backends import numpy_ref
from harness.spec import ModelSpec
from harness.weights import CanonicalWeights


class NumpyBackend:
    name = "numpy"

    def unavailable_reason(self) -> str | None:
        return None

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> PreparedNumpy:
        return PreparedNumpy(spec, weights)


class PreparedNumpy:
    def __init__(self, spec: ModelSpec, weights: CanonicalWeights):
        self.spec, self.params = spec, dict(weights)

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> numpy_ref.Outputs:
        return numpy_ref.forward(self.spec, self.params, x, seq_lens, h0, c0)

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        _, tape = numpy_ref.forward_with_tape(self.spec, self.params, x, seq_lens, h0, c0)
        d = {f"d{k}": v for k, v in cotangents.items()}
        return numpy_ref.backward(self.params, tape, **d)
