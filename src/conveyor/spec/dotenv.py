"""`.env` and `env_file` parsing, as Compose reads them.

One `KEY=VALUE` per line; blank lines and `#` comments are skipped; an `export ` prefix is
allowed. Values may be unquoted (an inline ` #` starts a comment), single-quoted (literal) or
double-quoted (escapes `\\n`, `\\t`, `\\"`, `\\\\`; may span lines). Unquoted and double-quoted
values are interpolated against keys defined earlier in the file, then `lookup`. A bare `KEY`
takes its value from `lookup` and is dropped when that has none.
"""

from __future__ import annotations

import re

from conveyor.errors import SpecError
from conveyor.spec.interpolate import InterpolationError, Lookup, substitute

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def parse_env(text: str, file: str, lookup: Lookup, *, raw: bool = False) -> dict[str, str]:
    """Parse env-file text. `raw` (Compose's `format: raw`) takes values verbatim.

    Raises SpecError pointing at the env file's own line.
    """
    values: dict[str, str] = {}

    def find(name: str) -> str | None:
        return values[name] if name in values else lookup(name)

    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise SpecError(file, number, "", f"invalid variable name {key!r}")
        if not sep:
            found = find(key)
            if found is not None:
                values[key] = found
            continue
        rest = rest.strip()
        if raw:
            values[key] = rest
            continue
        quote = rest[:1]
        try:
            if quote in ("'", '"'):
                body, consumed = _quoted(rest, lines[index:], quote)
                index += consumed
                values[key] = body if quote == "'" else _expand(body, find)
            else:
                values[key] = substitute(_strip_comment(rest), find)
        except (InterpolationError, ValueError) as exc:
            raise SpecError(file, number, key, str(exc)) from None
    return values


def _quoted(first: str, following: list[str], quote: str) -> tuple[str, int]:
    """Text between `quote`s, continuing over following lines; also the lines consumed."""
    text = first[1:]
    consumed = 0
    while True:
        end = _closing_quote(text, quote)
        if end >= 0:
            return text[:end], consumed
        if consumed >= len(following):
            raise ValueError(f"unterminated {quote} quote")
        text += "\n" + following[consumed]
        consumed += 1


def _closing_quote(text: str, quote: str) -> int:
    pos = 0
    while pos < len(text):
        if quote == '"' and text[pos] == "\\":
            pos += 2
            continue
        if text[pos] == quote:
            return pos
        pos += 1
    return -1


def _expand(body: str, find: Lookup) -> str:
    """Double-quoted value: backslash escapes, then interpolation (`\\$` stays a `$`)."""
    out: list[str] = []
    pos = 0
    while pos < len(body):
        char = body[pos]
        if char == "\\" and pos + 1 < len(body):
            nxt = body[pos + 1]
            # An escaped dollar must survive interpolation, so emit `$$` for it.
            out.append("$$" if nxt == "$" else _ESCAPES.get(nxt, "\\" + nxt))
            pos += 2
            continue
        out.append(char)
        pos += 1
    return substitute("".join(out), find)


def _strip_comment(value: str) -> str:
    cut = value.find(" #")
    return (value[:cut] if cut >= 0 else value).strip()
