"""Elasticsearch / OpenSearch `_bulk` (pure): records -> an NDJSON request, the answer -> a
verdict per record.

Each record becomes a `create` action with a stable `_id` (a hash of the record), in the index
its time names (`conveyor-%Y.%m.%d`, UTC), then its document:

    {"create": {"_index": "conveyor-2026.12.06", "_id": "9f2c…"}}
    {"@timestamp": "2026-12-06T10:00:00.123456Z", "message": "…", "log": {"level": "error"},
     "conveyor": {"project": "shop", "environment": "production", "service": "web",
                  "replica": "web-2", "release": 7, "container": "3f…", "stream": "stderr"},
     "fields": {"path": "/cart"}}

`create` (not `index`) makes a resend harmless: a document already there answers 409, which
counts as delivered. The answer is read item by item (`errors: true` says some failed): 429 and
5xx items are sent again, other 4xx items (a mapping conflict, say) are refused for good.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor.model.log_shipping import ElasticsearchDestination
from conveyor.model.logs import LogRecord
from conveyor.observe.logs.ship.verdict import (
    Answer,
    Rejection,
    Request,
    Verdict,
    retry_all,
    whole_request,
)

CONTENT_TYPE = "application/x-ndjson"
_CONFLICT = 409


def doc_id(record: LogRecord) -> str:
    """A stable id: the same record (labels, time, text, level, fields and the store's id)
    always hashes to the same value, so sending it twice stores it once. The parts are listed
    explicitly (not the model's dump) so the id does not change when a field is added."""
    labels = record.labels
    parts = [
        repr(record.ts),
        labels.project,
        labels.environment,
        labels.service,
        labels.replica,
        labels.release,
        labels.container,
        labels.stream,
        labels.job,
        record.level,
        record.message,
        record.fields,
        record.id,
    ]
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


def index_name(pattern: str, ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(pattern)


def timestamp(ts: float) -> str:
    """RFC 3339 in UTC with microseconds: what Elasticsearch's `date` type reads by default."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def document(record: LogRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {"@timestamp": timestamp(record.ts), "message": record.message}
    if record.level is not None:
        doc["log"] = {"level": record.level}
    doc["conveyor"] = _labels(record)
    if record.fields:
        doc["fields"] = dict(record.fields)
    return doc


def _labels(record: LogRecord) -> dict[str, Any]:
    labels = record.labels
    out: dict[str, Any] = {"project": labels.project}
    for key, value in (
        ("environment", labels.environment),
        ("service", labels.service),
        ("replica", labels.replica),
        ("release", labels.release),
        ("container", labels.container),
        ("stream", labels.stream),
        ("job", labels.job),
        ("host", labels.host),  # a fleet host
    ):
        if value is not None:
            out[key] = value
    return out


def bulk_body(records: Sequence[LogRecord], pattern: str) -> bytes:
    """The NDJSON body: an action line and a document line per record, each ending in a
    newline (the API refuses a body whose last line does not)."""
    lines: list[str] = []
    for record in records:
        action = {"create": {"_index": index_name(pattern, record.ts), "_id": doc_id(record)}}
        lines.append(json.dumps(action, separators=(",", ":")))
        lines.append(json.dumps(document(record), separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


class ElasticsearchFormat:
    """Requests and verdicts for one destination; `secrets` maps the variable names the
    destination gives (password_env, api_key_env) to their values."""

    def __init__(self, dest: ElasticsearchDestination, secrets: Mapping[str, str]) -> None:
        self.name = dest.name
        self.kind: str = dest.kind
        self._dest = dest
        url = dest.url
        self._url = url if url.endswith("/_bulk") else f"{url}/_bulk"
        self._headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json"}
        if dest.api_key_env is not None:
            self._headers["Authorization"] = f"ApiKey {secrets[dest.api_key_env]}"
        elif dest.username is not None and dest.password_env is not None:
            login = f"{dest.username}:{secrets[dest.password_env]}".encode()
            self._headers["Authorization"] = f"Basic {base64.b64encode(login).decode()}"

    def request(self, records: Sequence[LogRecord]) -> Request:
        return Request(self._url, self._headers, bulk_body(records, self._dest.index))

    def verdict(self, records: Sequence[LogRecord], answer: Answer) -> Verdict:
        count = len(records)
        whole = whole_request(count, answer, _error_reason(answer.body))
        if whole is not None:
            return whole
        try:
            body = json.loads(answer.body)
        except ValueError:
            return retry_all(count, "the _bulk answer is not JSON", answer.status)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != count:
            # Without one item per action, no record can be told delivered.
            return retry_all(count, "the _bulk answer does not list every action", answer.status)
        if body.get("errors") is False:
            return Verdict(status=answer.status)
        return _per_item(items, answer.status)


def _per_item(items: list[Any], status: int) -> Verdict:
    retry: list[int] = []
    rejected: list[Rejection] = []
    duplicates = 0
    problem: str | None = None
    for position, item in enumerate(items):
        result = next(iter(item.values()), None) if isinstance(item, dict) and item else None
        if not isinstance(result, dict) or not isinstance(result.get("status"), int):
            retry.append(position)
            problem = problem or "a _bulk item has no status"
            continue
        code = int(result["status"])
        if 200 <= code < 300:
            continue
        if code == _CONFLICT:
            duplicates += 1  # created by an earlier send: delivered
            continue
        reason = f"{code} {_item_reason(result.get('error'))}"
        if code == 429 or code >= 500:
            retry.append(position)
            problem = problem or reason
        else:
            rejected.append(Rejection(position, code, reason))
    if rejected and problem is None:
        problem = rejected[0].reason
    return Verdict(
        retry=tuple(retry),
        rejected=tuple(rejected),
        problem=problem,
        status=status,
        duplicates=duplicates,
    )


def _item_reason(error: Any) -> str:
    if isinstance(error, dict):
        kind = error.get("type") or "error"
        reason = error.get("reason") or ""
        return f"{kind}: {reason}" if reason else str(kind)
    return str(error) if error else "error"


def _error_reason(body: bytes) -> str:
    """The `error.type: error.reason` of an error answer, or its first line."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip().splitlines()[0][:200] if body.strip() else ""
    if isinstance(data, dict) and "error" in data:
        return _item_reason(data["error"])[:300]
    return ""
