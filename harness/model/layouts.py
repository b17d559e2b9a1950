"""Gate orders of each framework, as data, and the one function that converts between them.

Gate letters: LSTM i (input), o (output), f (forget), c (cell candidate, PyTorch's g);
GRU z (update), r (reset), h (candidate, PyTorch's n). The canonical order is ONNX's.
"""

from __future__ import annotations

import numpy as np

from harness.model.spec import Cell

GATE_ORDER: dict[str, dict[Cell, str]] = {
    "onnx": {Cell.RNN: "h", Cell.LSTM: "iofc", Cell.GRU: "zrh"},
    "torch": {Cell.RNN: "h", Cell.LSTM: "ifco", Cell.GRU: "rzh"},
    "keras": {Cell.RNN: "h", Cell.LSTM: "ifco", Cell.GRU: "zrh"},
}


def gate_permutation(cell: Cell, source: str, target: str) -> list[int]:
    """perm such that target block k = source block perm[k]."""
    src, dst = GATE_ORDER[source][cell], GATE_ORDER[target][cell]
    return [src.index(gate) for gate in dst]


def reorder_gates(array: np.ndarray, cell: Cell, source: str, target: str, axis: int = 0):
    """Reorder the G gate blocks of `array` along `axis` from one framework's order to another's."""
    blocks = np.split(np.asarray(array), cell.gates, axis=axis)
    return np.concatenate([blocks[k] for k in gate_permutation(cell, source, target)], axis=axis)
