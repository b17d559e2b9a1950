"""JSON as rnnbench writes its records: indented one level per nesting, except that a list of
numbers stays on one line (a stream case keeps thousands of raw latencies: one line each
would make a results file ten times the size)."""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMBER_LIST = re.compile(rf"\[\s*({_NUMBER}(?:,\s*{_NUMBER})*)\s*\]")


def dumps(data: Any) -> str:
    text = json.dumps(data, indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text)
