"""A record whose message is its structured line itself is shown once, by its fields."""

from __future__ import annotations

from conveyor.model.logs import LogLabels, LogRecord
from conveyor.observe.logs.parse import parse_line


def record(line: str) -> LogRecord:
    level, message, fields = parse_line(line)
    labels = LogLabels(project="p", container="c")
    return LogRecord(ts=0.0, labels=labels, message=message, level=level, fields=fields)


def test_structured_lines_without_a_message_are_whole_lines() -> None:
    assert record('{"level": "info", "path": "/", "status": 200}').whole_line()
    assert record("level=info path=/ status=200").whole_line()


def test_lines_with_a_message_or_without_fields_are_not() -> None:
    assert not record('{"msg": "served", "path": "/"}').whole_line()
    assert not record("level=warn msg=slow ms=800").whole_line()
    assert not record("plain words").whole_line()
    assert not record("ERROR: disk full").whole_line()
