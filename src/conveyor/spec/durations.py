"""Compose durations and byte sizes.

Durations follow Go's `time.ParseDuration` units (Compose is written in Go): "1m30s", "10s",
"500ms", "1h", "1.5s", with an optional sign; a bare number means seconds. Negative values
parse, so the semantic checks can say *which* field is negative rather than "bad format".

Byte sizes follow Docker's `RAMInBytes`: binary multiples, case-insensitive units with an
optional "b"/"ib" suffix ("512m", "1g", "1GiB", "100k", "1024b"), or a plain integer.
"""

from __future__ import annotations

import re

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    # Go accepts both the micro sign and the Greek mu.
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# Longest units first so "ms" is not read as "m" followed by a stray "s".
_UNIT = "|".join(sorted(_DURATION_UNITS, key=len, reverse=True))
_DURATION_PART = re.compile(rf"({_NUMBER})({_UNIT})")
_BARE_NUMBER = re.compile(rf"[+-]?{_NUMBER}")

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}

DURATION_HINT = "use e.g. '10s', '1m30s', '500ms' or a number of seconds"
SIZE_HINT = "use e.g. '512m', '1g', '100k' or a number of bytes"


def parse_duration(value: object) -> float:
    """A Compose duration as seconds. Raises ValueError naming the bad value."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid duration {value!r} ({DURATION_HINT})")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if _BARE_NUMBER.fullmatch(text):
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    if text[:1] in ("+", "-"):
        text = text[1:]
    if not text:
        raise ValueError(f"invalid duration {value!r} ({DURATION_HINT})")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r} ({DURATION_HINT})")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def parse_non_negative_duration(value: object) -> float:
    """A duration of 0 or more (a wait, a soak) as seconds. Raises ValueError."""
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def parse_bytes(value: object) -> int:
    """A byte size as an integer number of bytes. Raises ValueError naming the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"invalid byte size {value!r} ({SIZE_HINT})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid byte size {value!r} (must not be negative)")
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid byte size {value!r} ({SIZE_HINT})")
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid byte size {value!r} ({SIZE_HINT})")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
