"""Masked CI/CD variables: which values GitLab lets you mask, and hiding them in job logs.

`Masker` rewrites a byte stream so that every occurrence of a masked value reads `[MASKED]`,
whatever the chunking: a value split across two writes is still caught. Between writes it keeps
back only the tail that could be the start of a value (at most `longest value - 1` bytes), so a
log line that cannot hide a secret is released at once; `close()` releases the rest.

Overlaps are resolved towards hiding more: every occurrence of every value is found, including
occurrences that overlap or contain one another, and each run of overlapping occurrences becomes
one `[MASKED]`. Taking the longest match first alone is not enough: with values `abc` and
`bcdef`, the text `abcdef` would leave `def` visible. Two values that merely touch
(`abc` then `xyz`) stay two markers.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Iterable

MASK = b"[MASKED]"
MIN_LENGTH = 8
# GitLab's Ci::Maskable::REGEX allows the Base64 alphabet (RFC 4648, both variants) plus
# `@ : . ~`; its MASK_AND_RAW_REGEX, for raw (`expand: false`) variables, any non-whitespace.
# Ruby's `\s` is ASCII whitespace only, hence the explicit set.
MASKABLE_CHARS = frozenset(string.ascii_letters + string.digits + "+/=-_@:.~")
ASCII_SPACE = frozenset(" \t\r\n\f\v")


def validate_maskable(
    value: str, *, raw: bool = False, variable_names: Iterable[str] = ()
) -> str | None:
    """Why GitLab would refuse to mask `value`, or None if it can be masked.

    GitLab's rules: a single line, no spaces, at least 8 characters, and (unless the variable is
    raw, `expand: false`) only characters of the Base64 alphabet plus `@`, `:`, `.` and `~`.
    A value equal to a variable's name is refused too (masking it would hide the name).
    """
    problems: list[str] = []
    if "\n" in value or "\r" in value:
        problems.append("it spans more than one line")
    if any(c in ASCII_SPACE for c in value.replace("\n", "").replace("\r", "")):
        problems.append("it contains whitespace")
    if len(value) < MIN_LENGTH:
        problems.append(f"it has fewer than {MIN_LENGTH} characters")
    if not raw:
        bad = sorted({c for c in value if c not in ASCII_SPACE and c not in MASKABLE_CHARS})
        if bad:
            shown = " ".join(repr(c) for c in bad)
            problems.append(
                f"it contains {shown}; only A-Z a-z 0-9 and + / = - _ @ : . ~ can be masked "
                "(or make the variable raw, `expand: false`)"
            )
    if value in set(variable_names):
        problems.append("it equals the name of a CI/CD variable")
    if not problems:
        return None
    return "cannot be masked: " + "; ".join(problems)


class Masker:
    """Replace masked values in streamed output. Not thread-safe: one per stream."""

    def __init__(self, values: Iterable[str | bytes]) -> None:
        encoded = {v.encode() if isinstance(v, str) else v for v in values}
        self._values = sorted((v for v in encoded if v), key=len, reverse=True)
        self._keep = max((len(v) for v in self._values), default=1) - 1
        # A lookahead finds an occurrence at every position, overlapping ones included; longest
        # alternative first so each position reports its longest value.
        self._finder = (
            re.compile(b"(?=(" + b"|".join(re.escape(v) for v in self._values) + b"))")
            if self._values
            else None
        )
        self._by_first: dict[int, list[bytes]] = {}
        for v in self._values:
            self._by_first.setdefault(v[0], []).append(v)
        self._buffer = b""
        self._covered = 0  # leading buffer bytes inside a [MASKED] already written

    def feed(self, chunk: bytes) -> bytes:
        """Masked output for everything that can be decided now."""
        self._buffer += chunk
        return self._drain(final=False)

    def close(self) -> bytes:
        """The rest of the output: call once when the stream ends."""
        return self._drain(final=True)

    def mask_bytes(self, data: bytes) -> bytes:
        """Mask a complete byte string (this masker's stream state is not touched)."""
        whole = copy.copy(self)
        whole._buffer = data
        whole._covered = 0
        return whole._drain(final=True)

    def mask_text(self, text: str) -> str:
        # Values are whole UTF-8 sequences, and UTF-8 is self-synchronising, so masking bytes
        # never splits a character.
        return self.mask_bytes(text.encode()).decode()

    def _hold(self, buf: bytes) -> int:
        """Length of the longest tail of `buf` that is a proper prefix of some value."""
        for p in range(max(0, len(buf) - self._keep), len(buf)):
            for value in self._by_first.get(buf[p], ()):
                if value.startswith(buf[p:]):
                    return len(buf) - p
        return 0

    def _drain(self, *, final: bool) -> bytes:
        buf = self._buffer
        if self._finder is None:
            self._buffer = b""
            return buf
        # Occurrences starting before `limit` are fully visible; later ones may still grow.
        limit = len(buf) if final else len(buf) - self._hold(buf)
        out: list[bytes] = []
        emitted = self._covered  # bytes of buf already accounted for
        open_end = self._covered if self._covered else None  # end of the current masked run
        for m in self._finder.finditer(buf, 0, len(buf)):
            start = m.start()
            if start >= limit:
                break
            end = start + len(m.group(1))
            if open_end is not None and start < open_end:
                open_end = max(open_end, end)  # overlaps the run: extend it, no new marker
                continue
            if open_end is not None:
                emitted = open_end
            out.append(buf[emitted:start])
            out.append(MASK)
            emitted = start
            open_end = end
        if open_end is not None and open_end <= limit:
            emitted, open_end = open_end, None
        if open_end is None:
            out.append(buf[emitted:limit])
            self._covered = 0
        else:
            # The run may still be extended by an occurrence starting at or after `limit`.
            self._covered = open_end - limit
        self._buffer = buf[limit:]
        return b"".join(out)
