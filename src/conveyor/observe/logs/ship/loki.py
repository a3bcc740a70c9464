"""Grafana Loki push API (pure): records -> a JSON push request, the answer -> a verdict.

    POST /loki/api/v1/push   Content-Type: application/json   [X-Scope-OrgID: <tenant>]
    {"streams": [{"stream": {"project": "shop", "environment": "production",
                             "service": "web", "stream": "stderr"},
                  "values": [["1765015200123456000",
                              "{\"message\":\"…\",\"replica\":\"web-2\",…}"]]}]}

A stream's labels are the few the destination lists (project, environment, service, stream,
level): values with few distinct values, as Loki's index wants. Everything else about a record
(its replica, container, release, CI job, level, parsed fields, and any label not listed) is in
the line, a JSON object LogQL reads with `| json`. Entries of a stream are sorted by time.

The line is a pure function of the record, so a resend carries the same timestamp and the same
line: Loki keeps one of two identical entries of a stream. Loki answers 204; 429 and 5xx are
retried; 400 (an entry too old, a line too long, a bad label) refuses the request for good
(Loki may have kept its valid entries: the whole request is counted as refused).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from conveyor.model.log_shipping import LokiDestination, LokiLabel
from conveyor.model.logs import LogRecord
from conveyor.observe.logs.ship.verdict import Answer, Request, Verdict, whole_request

PUSH_PATH = "/loki/api/v1/push"
# Every record has a project: a stream whose listed labels are all unset still gets one
# label (Loki refuses a stream without labels).
_FALLBACK_LABEL: LokiLabel = "project"


def nanoseconds(ts: float) -> str:
    """The time as Loki wants it: nanoseconds, a string. From the float's shortest decimal
    form (a float product would turn .25 into .249999872)."""
    return str(int(Decimal(repr(ts)).scaleb(9).to_integral_value(ROUND_HALF_EVEN)))


def label_value(record: LogRecord, label: LokiLabel) -> str | None:
    match label:
        case "level":
            return record.level
        case "stream":
            return record.labels.stream
        case "project":
            return record.labels.project
        case "environment":
            return record.labels.environment
        case "service":
            return record.labels.service


def stream_labels(record: LogRecord, labels: Sequence[LokiLabel]) -> dict[str, str]:
    out: dict[str, str] = {
        name: value for name in labels if (value := label_value(record, name)) is not None
    }
    return out or {_FALLBACK_LABEL: record.labels.project}


def line(record: LogRecord, labels: Mapping[str, str]) -> str:
    """The record as the JSON line Loki stores: what its stream labels do not already say."""
    body: dict[str, Any] = {"message": record.message}
    if record.level is not None and "level" not in labels:
        body["level"] = record.level
    where = record.labels
    for key, value in (
        ("project", where.project),
        ("environment", where.environment),
        ("service", where.service),
        ("replica", where.replica),
        ("release", where.release),
        ("container", where.container),
        ("stream", where.stream),
        ("job", where.job),
        ("host", where.host),  # a fleet host
    ):
        if value is not None and key not in labels:
            body[key] = value
    if record.fields:
        body["fields"] = dict(record.fields)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def push_body(records: Sequence[LogRecord], labels: Sequence[LokiLabel]) -> bytes:
    streams: dict[tuple[tuple[str, str], ...], list[tuple[int, str, str]]] = {}
    for record in records:
        stream = stream_labels(record, labels)
        ns = nanoseconds(record.ts)
        key = tuple(sorted(stream.items()))
        streams.setdefault(key, []).append((int(ns), ns, line(record, stream)))
    out = []
    for key, entries in streams.items():
        entries.sort(key=lambda e: e[0])  # stable: lines of one instant keep their order
        out.append({"stream": dict(key), "values": [[ns, text] for _, ns, text in entries]})
    return json.dumps({"streams": out}, separators=(",", ":"), ensure_ascii=False).encode()


class LokiFormat:
    def __init__(self, dest: LokiDestination, secrets: Mapping[str, str]) -> None:
        self.name = dest.name
        self.kind: str = dest.kind
        self._labels = dest.labels
        url = dest.url
        self._url = url if url.endswith(PUSH_PATH) else f"{url}{PUSH_PATH}"
        self._headers = {"Content-Type": "application/json"}
        if dest.tenant is not None:
            self._headers["X-Scope-OrgID"] = dest.tenant
        if dest.username is not None and dest.password_env is not None:
            login = f"{dest.username}:{secrets[dest.password_env]}".encode()
            self._headers["Authorization"] = f"Basic {base64.b64encode(login).decode()}"

    def request(self, records: Sequence[LogRecord]) -> Request:
        return Request(self._url, self._headers, push_body(records, self._labels))

    def verdict(self, records: Sequence[LogRecord], answer: Answer) -> Verdict:
        reason = answer.body.decode(errors="replace").strip()
        whole = whole_request(len(records), answer, " ".join(reason.split())[:300])
        return whole if whole is not None else Verdict(status=answer.status)
