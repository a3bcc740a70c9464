"""What a line says: JSON and logfmt lines become level, message and fields; a plain line is
kept as it is, with a level when it names one the way logging libraries print it. Pure.

    parse_line('{"level":"warn","msg":"slow","ms":812}')
        -> ("warning", "slow", {"ms": "812"})
    parse_line('level=error msg="db down" retry=3')
        -> ("error", "db down", {"retry": "3"})
    parse_line("WARNING:root:disk at 91%") -> ("warning", "WARNING:root:disk at 91%", {})

A structured line without a message key keeps the whole line as its message, so nothing a
container wrote is lost; its keys are still fields. Nested JSON objects become dotted keys
(`{"http": {"status": 500}}` -> `http.status=500`); lists and scalars become their JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from conveyor.model.logs import LEVELS, LogLevel

Parsed = tuple[LogLevel | None, str, dict[str, str]]

# Keys naming the message and the level, in the order they are looked for.
MESSAGE_KEYS = ("message", "msg", "event", "log", "text")
LEVEL_KEYS = ("level", "severity", "lvl", "loglevel", "levelname", "log.level", "log_level")

_LEVEL_WORDS: dict[str, LogLevel] = {
    "trace": "trace",
    "finest": "trace",
    "debug": "debug",
    "dbug": "debug",
    "dbg": "debug",
    "fine": "debug",
    "finer": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warning",
    "warning": "warning",
    "wrn": "warning",
    "error": "error",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "critical": "critical",
    "crit": "critical",
    "fatal": "critical",
    "panic": "critical",
    "dpanic": "critical",
    "alert": "critical",
    "emerg": "critical",
    "emergency": "critical",
}
# Syslog severities (GELF and journald carry these): 0 emergency .. 7 debug.
_SYSLOG: tuple[LogLevel, ...] = (
    "critical",
    "critical",
    "critical",
    "error",
    "warning",
    "info",
    "info",
    "debug",
)
_DECODER = json.JSONDecoder()
_MAX_DEPTH = 4  # nested objects deeper than this stay JSON text

# A logfmt pair: key=value, the value bare (no space or quote) or double-quoted with escapes.
_PAIR = r'[^\s="]+=(?:"(?:[^"\\]|\\.)*"|[^\s"]*)'
_LOGFMT = re.compile(rf"\s*{_PAIR}(?:\s+{_PAIR})*\s*")
_PAIRS = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
# A level word as loggers print it near the start of a plain line: `ERROR`, `[WARN]`,
# `WARNING:root:...`, `2024-05-01 12:00:00,123 INFO app: ...`. Upper case only: "no error
# found" in a sentence is not a level.
_PLAIN_LEVEL = re.compile(
    r"(?<![A-Za-z0-9_])(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL|PANIC)"
    r"(?![A-Za-z0-9_])"
)
_PLAIN_LEVEL_SPAN = 48  # characters from the start a plain line's level is looked for in


def level_of(value: object) -> LogLevel | None:
    """A level as Conveyor names it, from a word (`WARN`, `err`, `Fatal`), a pino/bunyan
    number (10 trace .. 60 fatal) or a syslog severity (0 .. 7); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        n = int(value)
        if 0 <= n <= 7:
            return _SYSLOG[n]
        if 10 <= n <= 60:
            return LEVELS[min(n // 10 - 1, 5)] if n >= 20 else "trace"
        return None
    if isinstance(value, str):
        found = _LEVEL_WORDS.get(value) or _LEVEL_WORDS.get(value.strip().lower())
        if found is None and value.strip().isdigit():
            return level_of(int(value))
        return found
    return None


def parse_line(text: str) -> Parsed:
    """Level, message and fields of one line (see the module's doc)."""
    stripped = text.strip() if text[:1].isspace() or text[-1:].isspace() else text
    if stripped[:1] == "{" and stripped[-1:] == "}":
        found = parse_json(stripped)
        if found is not None:
            return found
    if "=" in stripped:
        pairs = parse_logfmt(stripped)
        if pairs is not None:
            return structured(pairs, text, owned=True)
    return plain_level(text), text, {}


def parse_json(text: str) -> Parsed | None:
    """A JSON object line; None when the text is not one (it is then a plain line)."""
    try:
        # raw_decode: json.loads without its whitespace look-ups (the text is stripped)
        value, end = _DECODER.raw_decode(text)
    except ValueError:
        return None
    if end != len(text):
        return None
    if not isinstance(value, dict):
        return None
    if all(type(v) is str for v in value.values()):  # the common, flat case: as it is
        return structured(value, text, owned=True)
    return structured(_flatten(value), text, owned=True)


def parse_logfmt(text: str) -> dict[str, str] | None:
    """`key=value key2="quoted value"` pairs; None unless the whole line is such pairs (a
    sentence with one `port=80` in it stays a plain line)."""
    if _LOGFMT.fullmatch(text) is None:
        return None
    return {
        key: _unquote(value) if value[:1] == '"' else value for key, value in _PAIRS.findall(text)
    }


def structured(pairs: Mapping[str, str], line: str, *, owned: bool = False) -> Parsed:
    """Level and message taken out of a structured line's keys; the rest are its fields.
    `owned`: `pairs` is a dict made for this line, taken as the fields (not copied)."""
    fields = pairs if owned and type(pairs) is dict else dict(pairs)
    level: LogLevel | None = None
    for key in LEVEL_KEYS:
        if key in fields:
            level = level_of(fields[key])
            if level is not None:
                del fields[key]
                break
    message = line
    for key in MESSAGE_KEYS:
        if key in fields:
            message = fields.pop(key)
            break
    return level, message, fields


def plain_level(text: str) -> LogLevel | None:
    """The level a plain line names in its first characters, in upper case; else None."""
    found = _PLAIN_LEVEL.search(text, 0, _PLAIN_LEVEL_SPAN)
    return None if found is None else _LEVEL_WORDS[found.group(1).lower()]


def _flatten(obj: Mapping[str, object], prefix: str = "", depth: int = 0) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < _MAX_DEPTH and value:
            out.update(_flatten(value, f"{name}.", depth + 1))
        elif isinstance(value, str):
            out[name] = value
        elif type(value) is int:  # the same text as JSON's, without an encoder call
            out[name] = str(value)
        else:
            out[name] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        if "\\" not in value:  # nothing escaped (the usual case): the text between the quotes
            return value[1:-1]
        try:
            text = json.loads(value)  # logfmt quotes the way Go's strconv.Quote does
        except ValueError:
            return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return text if isinstance(text, str) else value[1:-1]
    return value
