"""Ruby's `File.fnmatch` with FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB: how GitLab matches
`rules:changes`, `rules:exists` and `only/except:changes` paths."""

from __future__ import annotations

import re
from functools import lru_cache

from conveyor.ci.select.globs import brace_items, close_brace

__all__ = ["fnmatch"]


def fnmatch(pattern: str, path: str) -> bool:
    """GitLab's `changes`/`exists` glob match: `*` and `?` stop at `/`, `**/` spans directories
    (zero or more), a `**` not followed by `/` is a `*`, `{a,b}` alternates, `[...]` classes
    never match `/`, dot files are not special, and the whole path must match."""
    return _glob_regex(pattern).fullmatch(path) is not None


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("|".join(_glob_part(alt) for alt in _braces(pattern)))


def _braces(pattern: str) -> list[str]:
    """Ruby's brace expansion: the first `{...}` with a matching `}` (nesting and `\\`
    escapes respected) splits into its comma-separated items, recursively."""
    start = _find_unescaped(pattern, "{", 0)
    end = None if start < 0 else close_brace(pattern, start)
    if end is None:
        return [pattern]  # no brace, or no matching `}`: the brace is an ordinary character
    head, tail = pattern[:start], pattern[end + 1 :]
    return [
        alt for item in brace_items(pattern[start + 1 : end]) for alt in _braces(head + item + tail)
    ]


def _find_unescaped(text: str, char: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == char:
            return i
        i += 1
    return -1


def _glob_part(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        segment_start = i == 0 or pattern[i - 1] == "/"
        if char == "*" and segment_start and pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif char == "*":
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            text, i = _glob_class(pattern, i)
            out.append(text)
        elif char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _glob_class(pattern: str, start: int) -> tuple[str, int]:
    """A `[...]` class as a regex that never matches `/`. Ruby fails the whole match on an
    unterminated or empty class, and a reversed range matches nothing."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] in "!^"
    i += 1 if negated else 0
    items: list[str] = []
    empty = True
    while i < len(pattern) and pattern[i] != "]":
        empty = False
        low, i = _class_char(pattern, i)
        if i + 1 < len(pattern) and pattern[i] == "-" and pattern[i + 1] != "]":
            high, i = _class_char(pattern, i + 1)
            if low <= high:
                items.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            items.append(re.escape(low))
    if i >= len(pattern) or empty:
        return "(?!)", min(i + 1, len(pattern))
    body = "".join(items)
    if negated:
        return f"[^/{body}]", i + 1
    return (f"(?!/)[{body}]" if body else "(?!)"), i + 1


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if pattern[i] == "\\" and i + 1 < len(pattern):
        return pattern[i + 1], i + 2
    return pattern[i], i + 1
