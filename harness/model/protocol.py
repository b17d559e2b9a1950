"""What every backend provides: build once from spec + canonical weights, run many times."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from harness.model.outputs import Outputs
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights

# Gradients of a scalar loss are asked for through its gradients with respect to the outputs
# (the "cotangents", keyed like Outputs: y, h_n, c_n, head). A backend returns the gradients of
# every canonical weight plus the inputs "x", "h0" and (LSTM) "c0", in the canonical layout.
Cotangents = Mapping[str, np.ndarray]


class NotSupported(Exception):
    """This backend cannot run this spec or input; the message says why."""


class Prepared(Protocol):
    spec: ModelSpec

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs: ...

    def grad(self, x, cotangents: Cotangents, seq_lens=None, h0=None, c0=None) -> dict: ...


class Backend(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """None when usable here; else why not (package missing, no GPU)."""

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> Prepared: ...
