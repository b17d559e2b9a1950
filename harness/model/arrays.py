"""Named arrays: how weights, inputs, outputs and gradients pass between the harness and the
backends by name, whatever array namespace holds them (NumPy, CuPy or torch; None where a
model has no such array)."""

from __future__ import annotations

from typing import Any

Arrays = dict[str, Any]
