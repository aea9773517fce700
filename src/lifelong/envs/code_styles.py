"""Coding conventions applied to real code: simulated developers who write the same files their own way.

A style maps a file's lines to the same lines in another convention, token by token (Python's own
:mod:`tokenize`, so strings, comments and keywords are told apart), keeping the number of lines:

- ``pep8`` — the code as it is (snake_case names, the file's own quotes);
- ``camel`` — every name with inner underscores in camelCase (``parse_header`` → ``parseHeader``; leading
  underscores and dunders kept: ``_split_x`` → ``_splitX``, ``__init__`` unchanged);
- ``quotes`` — single-line string literals with the other quote character (``'a'`` ↔ ``"a"``) where the
  text inside does not hold it; triple-quoted strings unchanged.

A file that does not tokenize (not Python 3.11) is left as it is.

>>> camel(["def parse_header(raw_value):", "    return raw_value"])
['def parseHeader(rawValue):', '    return rawValue']
>>> quotes(["x = 'a' + \\"b\\""])
['x = "a" + \\'b\\'']
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from collections.abc import Callable, Sequence

from lifelong.errors import InvalidInput

__all__ = ["STYLES", "camel", "pep8", "quotes", "style_of"]

Style = Callable[[Sequence[str]], list[str]]
_SNAKE = re.compile(r"^(_*)([A-Za-z0-9]+(?:_[A-Za-z0-9]+)+)(_*)$")
_STRING = re.compile(r"^([rRbBuUfF]{0,2})(['\"])(.*)\2$", re.DOTALL)


def pep8(lines: Sequence[str]) -> list[str]:
    return list(lines)


def _camel_name(name: str) -> str:
    match = _SNAKE.match(name)
    if match is None or keyword.iskeyword(name) or (name.startswith("__") and name.endswith("__")):
        return name
    lead, body, tail = match.groups()
    first, *rest = body.split("_")
    return lead + first + "".join(part[:1].upper() + part[1:] for part in rest) + tail


def _swap_quotes(literal: str) -> str:
    match = _STRING.match(literal)
    if match is None or literal.endswith(("'''", '"""')):
        return literal
    prefix, quote, inner = match.groups()
    other = '"' if quote == "'" else "'"
    if other in inner or "\\" in inner:
        return literal  # swapping would need new escapes
    return f"{prefix}{other}{inner}{other}"


def _rewrite(lines: Sequence[str], kind: int, change: Callable[[str], str]) -> list[str]:
    """``lines`` with every single-line token of ``kind`` replaced by ``change(token)``."""
    out = list(lines)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return out
    edits: dict[int, list[tuple[int, int, str]]] = {}
    for token in tokens:
        if token.type != kind or token.start[0] != token.end[0]:
            continue
        new = change(token.string)
        if new != token.string:
            edits.setdefault(token.start[0] - 1, []).append((token.start[1], token.end[1], new))
    for row, changes in edits.items():
        if row >= len(out):
            continue
        line = out[row]
        for start, end, new in sorted(changes, reverse=True):
            line = line[:start] + new + line[end:]
        out[row] = line
    return out


def camel(lines: Sequence[str]) -> list[str]:
    return _rewrite(lines, tokenize.NAME, _camel_name)


def quotes(lines: Sequence[str]) -> list[str]:
    return _rewrite(lines, tokenize.STRING, _swap_quotes)


STYLES: dict[str, Style] = {"pep8": pep8, "camel": camel, "quotes": quotes}


def style_of(name: str) -> Style:
    """The style called ``name`` (one of :data:`STYLES`)."""
    if name not in STYLES:
        raise InvalidInput(f"unknown style {name!r}; choose from {', '.join(STYLES)}", field="style")
    return STYLES[name]
