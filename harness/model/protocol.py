"""What every backend provides: build once from spec + canonical weights, run many times.

Parity asks a prepared model for `forward` and `grad`; timing asks it for runners (a `run()`
that is one timed call, device sync inside, and a way to turn its result into canonical
arrays). A backend that lacks a capability raises NotSupported with the reason; the registry
says which benchmark modes each backend offers, so nothing else branches on its name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from harness.json_values import JsonObject
from harness.model.errors import NotSupported
from harness.model.outputs import Outputs
from harness.model.spec import ModelSpec
from harness.model.weights import CanonicalWeights

P = TypeVar("P", bound="BasePrepared")

__all__ = [
    "Backend",
    "BaseBackend",
    "BasePrepared",
    "Cotangents",
    "NotSupported",
    "Prepared",
    "Runner",
]

# Gradients of a scalar loss are asked for through its gradients with respect to the outputs
# (the "cotangents", keyed like Outputs: y, h_n, c_n, head). A backend returns the gradients of
# every canonical weight plus the inputs "x", "h0" and (LSTM) "c0", in the canonical layout.
Cotangents = Mapping[str, np.ndarray]
# (run, fetch): run() is one timed call; fetch(run's result) gives NumPy arrays or Outputs.
Runner = tuple[Callable[[], Any], Callable[[Any], Any]]


class Prepared(Protocol):
    spec: ModelSpec
    impl_class: str  # what runs, as detected or as asked for (the wording says which)

    def forward(self, x, seq_lens=None, h0=None, c0=None) -> Outputs: ...

    def grad(self, x, cotangents: Cotangents, seq_lens=None, h0=None, c0=None) -> dict: ...

    def forward_runner(self, x) -> Runner:
        """fetch(result) -> Outputs."""

    def train_step_runner(self, x, goal, lr: float) -> Runner:
        """run() is one unclipped SGD step on mean((y - goal)^2) and returns the loss;
        fetch(loss) -> (loss as a float, the canonical weights after the step)."""

    def train_sgd(self, xs, ys, lr: float, max_norm: float, frozen=()) -> tuple: ...

    def step_runner(self) -> Any:
        """One step per call with the state kept by the caller (a streaming service's call):
        a backends.streaming.base.StepRunner."""


class Backend(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """None when usable here; else why not (package missing, no GPU)."""

    def set_threads(self, n: int) -> JsonObject:
        """Fix this backend's library pools at n before anything is built; say what they are."""

    def build(self, spec: ModelSpec, weights: CanonicalWeights) -> Prepared: ...

    def product_runner(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], dtype: str) -> Runner:
        """run() multiplies every (a, b) pair into outputs allocated once; fetch -> arrays."""

    def copy_runner(self, source: np.ndarray) -> Runner:
        """run() copies source into a buffer allocated once; fetch -> the copy."""

    def mingru_runner(self, weights: Mapping[str, np.ndarray], x, sequential: bool) -> Runner:
        """minGRU's step loop or parallel scan; fetch -> [y, h_n]."""

    def parallel_in_time_runner(
        self, spec, weights, x, method: str, tol: float, max_iter: int
    ) -> Runner:
        """The model solved by Newton (or quasi-Newton) iterations over all T at once: run()
        returns its ParallelResult; fetch(result) -> (Outputs, iterations)."""

    def parallel_in_time_iteration(self, method: str) -> str:
        """Which implementation of that iteration runs here, in words ("": not said)."""


class BaseBackend:
    """Defaults for the optional capabilities: each says it is missing, with the reason."""

    name = ""  # its registry key: harness/registry.py's get_backend sets it
    product_label = "its matrix product"
    impl_label = ""  # how impl_class names its minGRU and parallel-in-time runners ("": name)

    def named(self, prepared: P) -> P:
        """`prepared`, named as this backend is (by its registry key)."""
        prepared.name = self.name
        return prepared

    def unavailable_reason(self) -> str | None:
        return None

    def set_threads(self, n: int) -> JsonObject:
        return {}

    def product_runner(self, pairs, dtype: str) -> Runner:
        raise NotSupported(f"{self.name} has no matrix-product mode")

    def copy_runner(self, source) -> Runner:
        raise NotSupported(f"{self.name} has no bandwidth probe")

    def mingru_runner(self, weights, x, sequential: bool) -> Runner:
        raise NotSupported(f"{self.name} has no minGRU")

    def parallel_in_time_runner(self, spec, weights, x, method, tol, max_iter) -> Runner:
        raise NotSupported(f"{self.name} has no parallel-in-time solver")

    def parallel_in_time_iteration(self, method: str) -> str:
        """Which implementation of the iteration parallel_in_time_runner runs, in words."""
        return ""


class BasePrepared:
    """Defaults for a prepared model's optional capabilities."""

    name = ""  # its backend's registry key: BaseBackend.named sets it

    impl_class = "as built"
    notes = ""  # what else a reader of its timing should know (an export's node count)
    audit: dict | None = None  # an ONNX export's audit (harness.onnx.audit), if it is one
    train_impl_class = ""  # what its training step runs ("": impl_class)
    train_other_parameters: tuple[str, ...] = ()  # weights it trains as another parameter
    train_input_grad = False  # whether its training step computes dx and dh0 too (FLOPs)

    def describe(self, run) -> str:
        """What `run` executes: detected where the backend can tell, else as asked for."""
        return self.impl_class

    def grad(self, x, cotangents, seq_lens=None, h0=None, c0=None) -> dict:
        raise NotSupported(f"{self.name} computes no gradients")

    def train_step_runner(self, x, goal, lr: float) -> Runner:
        raise NotSupported(f"{self.name} has no training mode")

    def train_sgd(self, xs, ys, lr: float, max_norm: float, frozen=()) -> tuple:
        raise NotSupported(f"{self.name} has no training")

    def step_runner(self) -> Any:
        raise NotSupported(f"{type(self).__name__} has no stateful step")
