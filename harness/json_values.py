"""JSON holds finite numbers only: NaN and infinities are written as null. JsonObject names what
crosses a JSON edge untyped: a file's content before its typed record reads it (or after it
writes it), environment metadata as collected, a message between processes."""

from __future__ import annotations

import math
from typing import Any

JsonObject = dict[str, Any]  # a JSON object at an edge; typed records read it (harness/records)


def finite_or_null(value: Any) -> Any:
    """A float that is not finite becomes None; anything else is returned as it is."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def nulls_for_nonfinite(value: Any) -> Any:
    """finite_or_null through dicts, lists and tuples (tuples become lists)."""
    if isinstance(value, dict):
        return {k: nulls_for_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nulls_for_nonfinite(v) for v in value]
    return finite_or_null(value)
