"""What a forward pass returns, in the canonical layout every backend hands back:
y    [T, B, D*H] the last layer's outputs, directions concatenated (zero at padded steps)
     ([B, T, D*H] when spec.batch_first)
h_n  [L*D, B, H] final states, layer-major then direction (PyTorch's h_n layout)
c_n  like h_n, LSTM only
head [B, units]  dense head on the last layer's final states, directions concatenated
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.model.arrays import Arrays


@dataclasses.dataclass
class Outputs:
    y: Any
    h_n: Any
    c_n: Any = None
    head: Any = None

    def as_dict(self) -> Arrays:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }
