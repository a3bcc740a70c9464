"""Lines as the collector reads them: JSON, logfmt and plain, odd ones included."""

from __future__ import annotations

import pytest

from conveyor.observe.logs.parse import level_of, parse_line, parse_logfmt


@pytest.mark.parametrize(
    ("line", "level", "message", "fields"),
    [
        ('{"level":"warn","msg":"slow","ms":812}', "warning", "slow", {"ms": "812"}),
        ('{"severity":"ERROR","message":"db down"}', "error", "db down", {}),
        # structlog's JSON renderer calls the message `event`
        (
            '{"event":"user created","level":"info","user_id":7}',
            "info",
            "user created",
            {"user_id": "7"},
        ),
        # pino numbers
        ('{"level":50,"msg":"boom","pid":1}', "error", "boom", {"pid": "1"}),
        ('{"level":30,"msg":"ok"}', "info", "ok", {}),
        # nested objects become dotted keys; lists, null and booleans their JSON text
        (
            '{"msg":"req","http":{"status":500,"path":"/x"},"tags":["a","b"],"ok":false,"n":null}',
            None,
            "req",
            {
                "http.status": "500",
                "http.path": "/x",
                "tags": '["a","b"]',
                "ok": "false",
                "n": "null",
            },
        ),
        # no message key: the whole line is the message, its keys are still fields
        (
            '{"user":"bob","action":"login"}',
            None,
            '{"user":"bob","action":"login"}',
            {"user": "bob", "action": "login"},
        ),
        # a level that is not one stays a field
        ('{"level":"verbose-ish","msg":"x"}', None, "x", {"level": "verbose-ish"}),
        # unicode and escapes survive
        ('{"msg":"caf\\u00e9 \\"quoted\\"\\nnext"}', None, 'café "quoted"\nnext', {}),
        ('level=error msg="db down" retry=3', "error", "db down", {"retry": "3"}),
        (
            'ts=2024-01-01T00:00:00Z lvl=debug msg="a \\"b\\" c" path=/x?y=1',
            "debug",
            'a "b" c',
            {"ts": "2024-01-01T00:00:00Z", "path": "/x?y=1"},
        ),
        # an empty value, and base64 padding in a bare value
        ("msg=hi empty= token=YWJj==", None, "hi", {"empty": "", "token": "YWJj=="}),
        # logfmt without msg: the line is the message
        ("status=200 bytes=512", None, "status=200 bytes=512", {"status": "200", "bytes": "512"}),
    ],
)
def test_structured_lines(
    line: str, level: str | None, message: str, fields: dict[str, str]
) -> None:
    assert parse_line(line) == (level, message, fields)


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("plain text with no level", None),
        ("WARNING:root:disk at 91%", "warning"),
        ("2024-05-01 12:00:00,123 ERROR app: failed", "error"),
        ("[INFO] started", "info"),
        ("  FATAL  crash", "critical"),
        ("no error found in lower case", None),  # a sentence, not a level
        ("ERRORS are counted", None),  # a longer word
        ("x" * 60 + " ERROR late", None),  # too far from the start
        ("", None),
    ],
)
def test_plain_lines_keep_their_text(line: str, level: str | None) -> None:
    assert parse_line(line) == (level, line, {})


@pytest.mark.parametrize(
    "line",
    [
        "{not json}",
        '{"unterminated": "x"',
        "[1, 2, 3]",
        '"just a string"',
        "Starting server on port=8000",  # a sentence with one pair
        "a = b",
        'key="unterminated',
        "=value",
        "{}x",
    ],
)
def test_lines_that_only_look_structured_stay_plain(line: str) -> None:
    _level, message, fields = parse_line(line)
    assert message == line
    assert fields == {}


def test_a_json_array_or_scalar_is_plain() -> None:
    assert parse_line("42") == (None, "42", {})


def test_logfmt_needs_every_token_to_be_a_pair() -> None:
    assert parse_logfmt("a=1 b=2") == {"a": "1", "b": "2"}
    assert parse_logfmt("a=1 b") is None
    assert parse_logfmt('a="x y" b="z"') == {"a": "x y", "b": "z"}


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("WARN", "warning"),
        ("Warning", "warning"),
        ("err", "error"),
        ("fatal", "critical"),
        ("panic", "critical"),
        ("notice", "info"),
        (10, "trace"),
        (20, "debug"),
        (40, "warning"),
        (60, "critical"),
        (3, "error"),  # syslog
        (7, "debug"),
        ("30", "info"),
        (True, None),
        (99, None),
        ("loud", None),
        (None, None),
    ],
)
def test_levels(value: object, level: str | None) -> None:
    assert level_of(value) == level
