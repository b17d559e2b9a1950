"""What a model does to its input before the recurrence: nothing (PLAIN), an embedding lookup of
integer tokens, or Keras masking (a Masking layer's mask_value, an Embedding's mask_zero). The
recurrence's spec and weights do not hold it: a model file (harness/model_file) carries it
beside them, and the reference computes through it (harness/model_file/front.py)."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    table: np.ndarray | None = None  # an embedding [V, I]: the input is integer tokens
    mask_value: float | None = None  # Keras Masking: a step whose every feature equals it
    mask_zero: bool = False  # Keras Embedding(mask_zero=True): token 0 is a masked step
    zero_output_for_mask: bool = False  # masked steps output zeros, not the last output
    layers: tuple[str, ...] = ()  # where it comes from, for messages

    @property
    def tokens(self) -> bool:
        return self.table is not None

    @property
    def masks(self) -> bool:
        return self.mask_value is not None or self.mask_zero

    @property
    def vocabulary(self) -> int:
        return 0 if self.table is None else int(self.table.shape[0])

    def describe(self) -> str:
        parts = []
        if self.table is not None:
            V, I = self.table.shape
            parts.append(f"embedding {V} x {I} (integer tokens in)")
        if self.mask_value is not None:
            parts.append(f"masking steps equal to {self.mask_value:g}")
        if self.mask_zero:
            parts.append("token 0 masked")
        return ", ".join(parts)


PLAIN = FrontEnd()
