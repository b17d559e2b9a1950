"""Names are data: a tensor, node, layer or file name read from a user's file is shown as text,
never obeyed, on a terminal, in Markdown (and the HTML made from it) and in XML. Every place
that prints or writes such a name passes it through one of these."""

from __future__ import annotations


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def for_terminal(text: object) -> str:
    """`text` with every character that is not printable shown as its escape (ESC as `\\x1b`):
    controls (CR, backspace, line breaks, tabs), bidi overrides and other invisible format
    characters, lone surrogates (a file name that is not UTF-8), unassigned code points. A
    backslash is kept as it is: `\\x1b` written in a name reads the same as an escaped ESC."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def for_xml(text: object) -> str:
    """for_terminal, keeping tabs and line breaks: what is left is allowed by XML 1.0 (every
    character it forbids is not printable) and ElementTree escapes the rest (&, <, quotes)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\t\n" else _escaped(c) for c in text)


# Markdown's own characters that could end a table cell (|), open a code span (`) or, with < and
# &, write HTML or an entity; > alone opens nothing inside a line and is kept readable.
_MARKDOWN = str.maketrans({"|": "&#124;", "`": "&#96;", "<": "&lt;", "&": "&amp;"})


def for_markdown(text: object) -> str:
    """One line of Markdown text that renders as `text` and is never markup: for_terminal's
    escapes, then a backslash doubled (so that it escapes nothing after it), |, `, <, & as
    character references (no raw HTML, no cell ends, in a table or out of one), and the ( of
    `](` too (no link, no image fetched from elsewhere). * and _ are left as they are: they
    change how a name looks, not what the page does."""
    shown = for_terminal(text).replace("\\", "\\\\").translate(_MARKDOWN)
    return shown.replace("](", "]&#40;")


def for_markdown_code(text: object) -> str:
    """`text` as a code span where it holds nothing a code span would show raw (code spans
    show references and backslashes as written), else for_markdown's plain text."""
    text = str(text)
    if text.isprintable() and not any(c in text for c in "\\|`<&"):
        return f"`{text}`"
    return for_markdown(text)
