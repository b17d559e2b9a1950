"""A pydantic ValidationError as one line: the file, the first failing field's path, what it
holds and what is allowed."""

from __future__ import annotations

import re

from pydantic import ValidationError

MORE = " (and {n} more problem{s})"


def one_line(exc: ValidationError, where: str) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = _path(first["loc"])
    found = first.get("input")
    shown = _short(found)
    message = first["msg"].replace("\n", " ")
    if message.startswith(("Value error, ", "Assertion failed, ")):
        message = message.split(", ", 1)[1]
    text = f"{where}: {path or 'the document'}"
    if first["type"] in ("value_error", "assertion_error") and message.startswith("allowed"):
        text += f" = {shown}: {message}"
    elif first["type"] in ("value_error", "assertion_error"):  # a validator's own sentence
        text += f": {message}"
    elif first["type"] == "missing":
        text += ": missing"
    elif first["type"] == "extra_forbidden":
        text += ": not a field this file may hold"
    else:
        text += f" = {shown}: {_allowed(first['type'], message)}"
    if len(errors) > 1:
        text += MORE.format(n=len(errors) - 1, s="s" if len(errors) > 2 else "")
    return text


def _path(loc) -> str:
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _type_name(item):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _type_name(item) -> bool:
    """A step of pydantic's error path that names the type it tried, not a field of the file."""
    return isinstance(item, str) and (
        item.startswith(("constrained-", "function-"))
        or item in ("int", "float", "str", "bool", "list", "dict")
    )


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


PLAIN = (
    (re.compile(r"^greater than or equal to (\S+)$"), r"a number >= \1"),
    (re.compile(r"^greater than (\S+)$"), r"a number > \1"),
    (re.compile(r"^less than or equal to (\S+)$"), r"a number <= \1"),
    (re.compile(r"^a valid integer.*"), "an integer"),
    (re.compile(r"^a valid number.*"), "a number"),
    (re.compile(r"^a valid dictionary.*"), "a table of fields"),
    (re.compile(r"^a valid list.*"), "a list"),
    (re.compile(r"^a valid boolean.*"), "true or false"),
    (re.compile(r"^a valid string.*"), "a string"),
    (re.compile(r"^a finite number.*"), "a finite number"),
)


def _allowed(kind: str, message: str) -> str:
    """pydantic's words as 'allowed ...' where they name what would do."""
    lowered = message[0].lower() + message[1:] if message else message
    if not lowered.startswith("input should be "):
        return lowered
    wanted = lowered[len("input should be ") :]
    for pattern, plain in PLAIN:
        if pattern.match(wanted):
            wanted = pattern.sub(plain, wanted)
            break
    return "allowed " + wanted
