"""The stateful step every backend offers, and the stream of T steps that proves it.

A StepRunner's `step(x_t, state)` is one call a service makes: x_t [B, I] arrives as a NumPy
array, the step's outputs come back as NumPy arrays (materialised: device work finished), and
the new state comes back in the framework's own form, held by the caller until its next call.
`to_state` and `from_state` move a state between that form and the canonical NumPy one
(h, c as [L, B, H]): a server that batches steps of many streams gathers and scatters states
through them. `noop(x_t)` is the least a call into the framework costs: the same way in and out
around one trivial operation, and no model arithmetic; what a step costs beyond it and beyond
the in-sequence step is the price of calling one step at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.model.outputs import Outputs
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, ModelSpec

State = Any  # the framework's own form of (h, c), opaque to the caller
StepOutputs = tuple[np.ndarray, np.ndarray | None]  # y_t [B, H], head_t [B, units] or None


@dataclasses.dataclass(frozen=True)
class StepRunner:
    step: Callable[[np.ndarray, State], tuple[StepOutputs, State]]
    zero_state: Callable[[int], State]  # batch -> zeros in the framework's form
    to_state: Callable[[np.ndarray, np.ndarray | None], State]  # h, c [L, B, H] -> state
    from_state: Callable[[State], tuple[np.ndarray, np.ndarray | None]]
    noop: Callable[[np.ndarray], Any]  # the least a call into the framework costs
    impl_class: str  # what one step runs
    noop_class: str  # what the no-op call runs


def check_streamable(spec: ModelSpec) -> None:
    """NotSupported for a model that cannot run one step at a time."""
    if spec.bidirectional:
        raise NotSupported(
            "a bidirectional model cannot stream: its reverse direction reads the sequence "
            "from its end, which a stream has not reached"
        )


def zeros_state(spec: ModelSpec, batch: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The canonical zero state (h, c), each [L, B, H], for `batch` streams (c None but for
    the LSTM)."""
    h = np.zeros((spec.num_layers, batch, spec.hidden_size), spec.dtype)
    return h, (np.zeros_like(h) if spec.cell is Cell.LSTM else None)


def streamed(runner: StepRunner, spec: ModelSpec, x: np.ndarray) -> Outputs:
    """x [T, B, I] run as T calls of one step each, from the zero state: the outputs a whole
    sequence gives (y [T, B, H], or [B, T, H] for a batch-first spec; h_n and c_n the last
    state; head the last step's). Halfway, the state goes to its canonical form and back, as
    a server that batches many streams moves it: the proof covers that path too."""
    state, ys, head = runner.zero_state(x.shape[1]), [], None
    for t, x_t in enumerate(x):
        if t == len(x) // 2:
            state = runner.to_state(*runner.from_state(state))
        (y, head), state = runner.step(np.ascontiguousarray(x_t), state)
        ys.append(np.array(y, copy=True))
    h_n, c_n = runner.from_state(state)
    y = np.stack(ys, axis=1 if spec.batch_first else 0)
    return Outputs(y, np.array(h_n), None if c_n is None else np.array(c_n), head)
