"""Path patterns as GitLab Runner matches them (the Go `doublestar` v4 rules), compiled to regexes.

GitLab documents `artifacts:paths`, `artifacts:exclude` and `cache:paths` as doublestar globs:

- `*` matches any run of characters except `/`; `?` one character except `/`. Hidden files are
  not special (Go's matcher has no dot-file rule, unlike a shell).
- `**` as a whole path component matches zero or more directories: `**/x` matches `x` and
  `a/b/x`; a trailing `/**` also matches the directory itself. Anywhere else `**` is a `*`.
- `[abc]`, `[a-z]`, `[!a]`/`[^a]` classes (never matching `/`), `{a,b}` alternatives,
  `\\` escapes the next character.

Patterns are matched against slash-separated paths relative to the workspace, whole-path.
"""

from __future__ import annotations

import posixpath
import re
from functools import lru_cache

MAGIC = frozenset("*?[{\\")


def has_magic(text: str) -> bool:
    return any(c in MAGIC for c in text)


def split_components(pattern: str) -> list[str]:
    """Split on `/`, except inside `{...}` or `[...]` (an alternative may hold a slash)."""
    return _split_outside(pattern, "/", classes=True)


def _split_outside(text: str, sep: str, *, classes: bool) -> list[str]:
    """Split `text` on `sep` outside `{...}` (and `[...]` with `classes`); `\\x` escapes are
    kept as written and never split."""
    parts: list[str] = []
    depth = 0
    in_class = False
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[" and classes:
            in_class = True
        elif c == "{":
            depth += 1
        elif c == "}" and depth:
            depth -= 1
        elif c == sep and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def split_pattern(pattern: str) -> tuple[str, str]:
    """(literal base directory, rest): where a walk for the pattern can start.

    `build/out/*.xml` → (`build/out`, `*.xml`); `**/x` → (`""`, `**/x`); `a/b` → (`a/b`, `""`).
    """
    parts = split_components(pattern)
    for i, part in enumerate(parts):
        if has_magic(part):
            return "/".join(parts[:i]), "/".join(parts[i:])
    return pattern, ""


def _class(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate the `[...]` at `start`; None when unterminated (then `[` is literal)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    body: list[str] = []
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and not first:
            members = "".join(body)
            # A class never matches the separator, as in Go's path matching.
            return (f"[^{members}/]" if negate else f"(?!/)[{members}]"), i + 1
        if c == "\\" and i + 1 < len(pattern):
            body.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            body.append(c if c == "-" else re.escape(c))
            i += 1
        first = False
    return None


def close_brace(pattern: str, start: int) -> int | None:
    """Index of the `}` that closes the `{` at `start` (nesting and `\\` escapes respected),
    or None when it is never closed."""
    depth = 0
    i = start
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def brace_items(body: str) -> list[str]:
    """The comma-separated alternatives of a `{...}` body (nested braces kept whole)."""
    return _split_outside(body, ",", classes=False)


def _segment(pattern: str) -> str:
    """Regex for text without `**` components (may still contain `/` inside alternatives)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        elif c == "[" and (translated := _class(pattern, i)) is not None:
            out.append(translated[0])
            i = translated[1]
            continue
        elif c == "{" and (end := close_brace(pattern, i)) is not None:
            alternatives = brace_items(pattern[i + 1 : end])
            out.append("(?:" + "|".join(_translate(a) for a in alternatives) + ")")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _translate(pattern: str) -> str:
    parts = split_components(pattern)
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            if last:
                # `a/**` matches `a` itself and everything below it; a lone `**` everything.
                out.append(".*" if i == 0 else "(?:/.*)?")
            else:
                out.append("(?:.*/)?" if i == 0 else "/(?:.*/)?")
            continue
        if i > 0 and parts[i - 1] != "**":
            out.append("/")
        out.append(_segment(part))
    return "".join(out)


def normalize(pattern: str) -> str:
    """Drop `./`, doubled and trailing slashes: `./dist/` and `dist` mean the same."""
    text = pattern.strip()
    while text.startswith("./"):
        text = text[2:]
    text = re.sub(r"/{2,}", "/", text)
    return text.rstrip("/") if text != "/" else text


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regex that full-matches the relative paths `pattern` selects."""
    return re.compile(_translate(normalize(pattern)), re.DOTALL)


def match(pattern: str, path: str) -> bool:
    """Whether slash-separated relative `path` matches the doublestar `pattern`."""
    return compile_glob(pattern).fullmatch(posixpath.normpath(path)) is not None


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """GitLab's `Repository#search_files_by_wildcard_path` (wildcard `include: local:` and
    `cache:key:files`): `**` is any text, slashes included, `*` any text within one
    directory; everything else is literal."""
    escaped = re.escape(pattern)
    text = escaped.replace(r"\*\*", "\0").replace(r"\*", "[^/]*?").replace("\0", ".*?")
    return re.compile(text, re.DOTALL)
