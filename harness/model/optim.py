"""Plain SGD with global-norm gradient clipping, defined once for every framework.

Clipping follows tf.clip_by_global_norm: g *= max_norm / max(norm, max_norm). torch's
clip_grad_norm_ divides by (norm + 1e-6) instead, a 1e-6 relative difference that float64
parity would see, so the torch backend applies this rule itself.
"""

from __future__ import annotations

import numpy as np


def global_norm(grads) -> float:
    return float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads)))


def clip_scale(norm: float, max_norm: float) -> float:
    return max_norm / max(norm, max_norm)


def clip_by_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> dict[str, np.ndarray]:
    scale = clip_scale(global_norm(grads.values()), max_norm)
    return {k: g * scale for k, g in grads.items()}
