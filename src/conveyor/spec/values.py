"""Scalar coercions with short, human error messages.

The Compose schema allows strings for most numbers and booleans because interpolation always
yields strings (`replicas: ${REPLICAS}`), so the real type check happens here, after
interpolation. Every function raises ValueError with a message ready for a SpecError.
"""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def describe(value: object) -> str:
    """How a YAML value reads in an error message: `'two'`, `5`, `a list`, `nothing`."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(str(value))


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a choice is close to `word`, else an empty string. Never
    `word` itself: when it is a choice, the problem lies elsewhere and the caller says so."""
    close = difflib.get_close_matches(word, [c for c in choices if c != word], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(value: object, choices: Iterable[str]) -> str:
    """`value` if it is one of `choices`, else ValueError listing them (with a suggestion)."""
    options = list(choices)
    if isinstance(value, str) and value in options:
        return value
    listed = ", ".join(f"'{c}'" for c in options)
    hint = suggest(value, options) if isinstance(value, str) else ""
    raise ValueError(f"must be one of {listed}, got {describe(value)}{hint}")


def to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"must be an integer, got {describe(value)}")


def to_float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"must be a number, got {describe(value)}")


def to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"must be true or false, got {describe(value)}")


def to_str(value: object) -> str:
    """Environment and label values: YAML booleans become `true`/`false` as in Compose."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def signal_name(value: str) -> str:
    """`TERM`, `sigterm` or `SIGTERM` -> `SIGTERM`; ValueError for names the OS lacks."""
    text = value.strip().upper()
    name = text if text.startswith("SIG") else f"SIG{text}"
    # `Signals.__members__` holds real signals and their aliases (SIGIOT, SIGPOLL…), never
    # the handler constants SIG_DFL/SIG_IGN that also live in the `signal` module.
    known = set(signal.Signals.__members__)
    if name in known:
        return name
    raise ValueError(f"unknown signal {value!r}{suggest(name, known)}")
