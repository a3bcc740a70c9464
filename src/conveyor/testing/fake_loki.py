"""A small HTTP server answering Grafana Loki's push API as Grafana documents it, on a loopback
port. No Loki can run here; this stands in for one in the tests of log shipping
(observe.logs.ship), which are therefore not tests against the real server.

- `POST /loki/api/v1/push` with `Content-Type: application/json`: `{"streams": [{"stream":
  {label: value}, "values": [["<ns since epoch, a string>", "<line>"(, {metadata})], ...]}]}`.
  Success is 204 with no body. Another content type is read as protobuf, which JSON is not:
  400. A timestamp that is not a string, a stream without labels, a bad label name, more
  than 15 labels, or a malformed body: 400 with Loki's plain-text message.
- Per stream, an entry equal to one already stored (same timestamp, same line) is a
  duplicate and kept once, as Loki's ingesters do; an entry older than the stream's newest by
  more than `max_age` (Loki's `max_chunk_age / 2`, 1 h by default) is refused: "entry too far
  behind". Entries a request refuses are listed in a 400 answer, the others are kept (Loki
  answers 400 for a partly written request). Lines longer than `max_line_size` are refused
  likewise.
- With `tenants` set (Loki's `auth_enabled: true`), `X-Scope-OrgID` must name one: 401 "no
  org id" otherwise; each tenant has its own streams.
- `GET /ready` answers `ready`.

Faults a test injects (consumed by the next requests, in order): `fail_next` (whole-request
statuses: 429 "Ingestion rate limit exceeded…", 500, 503…) and `lose_answers_next` (the request
is processed and stored, then the connection closes without an answer).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from conveyor.testing.loopback_http import LoopbackHttp, Reply

PUSH = "/loki/api/v1/push"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TEXT = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
MAX_LABELS = 15

StreamKey = tuple[tuple[str, str], ...]


@dataclass
class Entry:
    ns: int
    line: str
    metadata: dict[str, str]


@dataclass
class PushRequest:
    headers: dict[str, str]
    body: Any  # the JSON as sent (None when it was not JSON)
    answered: int | None


@dataclass
class FakeLoki:
    tenants: set[str] | None = None  # None: single-tenant mode (tenant "fake")
    max_age: float = 3600.0  # seconds behind a stream's newest entry that are still taken
    max_line_size: int = 256 * 1024
    fail_next: list[int] = field(default_factory=list)
    lose_answers_next: int = 0
    # (tenant, stream labels) -> entries in arrival order
    streams: dict[tuple[str, StreamKey], list[Entry]] = field(default_factory=dict)
    requests: list[PushRequest] = field(default_factory=list)
    duplicates: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.http = LoopbackHttp(self.handle, "fake-loki")

    @property
    def url(self) -> str:
        return self.http.url

    def reset(self) -> None:
        """Forget every stream, request and pending fault (a module-scoped server, reused)."""
        with self._lock:
            self.streams.clear()
            self.requests.clear()
            self.fail_next.clear()
            self.lose_answers_next = self.duplicates = 0

    def entries(self, tenant: str = "fake") -> list[tuple[dict[str, str], Entry]]:
        with self._lock:
            return [
                (dict(key), entry)
                for (owner, key), entries in self.streams.items()
                if owner == tenant
                for entry in entries
            ]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        route = path.split("?", 1)[0]
        if method == "GET" and route == "/ready":
            return Reply(200, b"ready\n", _TEXT)
        if route != PUSH:
            return Reply(404, b"404 page not found\n", _TEXT)
        if method != "POST":
            return Reply(405, b"", _TEXT)
        tenant = headers.get("x-scope-orgid", "")
        if self.tenants is not None and tenant not in self.tenants:
            return _text(401, "no org id")
        tenant = tenant if self.tenants is not None else "fake"
        with self._lock:
            try:
                parsed: Any = json.loads(body)
            except ValueError:
                parsed = None
            if self.fail_next:
                status = self.fail_next.pop(0)
                self.requests.append(PushRequest(headers, parsed, status))
                return _injected(status, tenant, len(body))
            lose = self.lose_answers_next > 0
            if lose:
                self.lose_answers_next -= 1
            reply = self._push(tenant, headers, body, parsed)
            self.requests.append(PushRequest(headers, parsed, None if lose else reply.status))
        return Reply(None) if lose else reply

    def _push(self, tenant: str, headers: dict[str, str], body: bytes, parsed: Any) -> Reply:
        kind = headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/json":
            return _text(400, "snappy: corrupt input")  # what a JSON body read as protobuf gives
        if not isinstance(parsed, dict) or not isinstance(parsed.get("streams"), list):
            return _text(400, "loghttp.PushRequest.Streams: ReadArray: expect [ or n")
        checked: list[tuple[StreamKey, list[Entry]]] = []
        for stream in parsed["streams"]:
            problem, key, entries = _stream(stream)
            if problem is not None:
                return _text(400, problem)
            checked.append((key, entries))
        refused: list[str] = []
        total = 0
        for key, entries in checked:
            stored = self.streams.setdefault((tenant, key), [])
            seen = {(e.ns, e.line) for e in stored}
            newest = max((e.ns for e in stored), default=0)
            for entry in entries:
                total += 1
                if len(entry.line.encode()) > self.max_line_size:
                    refused.append(
                        f"Max entry size '{self.max_line_size}' bytes exceeded for stream "
                        f"'{_selector(key)}' while adding an entry with length "
                        f"'{len(entry.line.encode())}' bytes"
                    )
                    continue
                if (entry.ns, entry.line) in seen:
                    self.duplicates += 1
                    continue
                if newest and entry.ns < newest - int(self.max_age * 1e9):
                    refused.append(
                        f"entry with timestamp {entry.ns} ignored, reason: 'entry too far "
                        f"behind, oldest acceptable timestamp is: "
                        f"{newest - int(self.max_age * 1e9)}' for stream: {_selector(key)}"
                    )
                    continue
                stored.append(entry)
                seen.add((entry.ns, entry.line))
                newest = max(newest, entry.ns)
        if refused:
            return _text(
                400, ",\n".join(refused) + f",\ntotal ignored: {len(refused)} out of {total}"
            )
        return Reply(204)


def _stream(stream: Any) -> tuple[str | None, StreamKey, list[Entry]]:
    if not isinstance(stream, dict):
        return "loghttp.PushRequest.Streams: expect { or n", (), []
    labels = stream.get("stream")
    if not isinstance(labels, dict) or not labels:
        return "error at least one label pair is required per stream", (), []
    for name, value in labels.items():
        if not _LABEL_NAME.fullmatch(str(name)):
            return f"error parsing labels: invalid label name {name!r}", (), []
        if not isinstance(value, str):
            return f"error parsing labels: the value of {name} is not a string", (), []
    if len(labels) > MAX_LABELS:
        return (
            (
                f"stream '{_selector(tuple(labels.items()))}' has {len(labels)} label names; "
                f"limit {MAX_LABELS}"
            ),
            (),
            [],
        )
    key: StreamKey = tuple(sorted(labels.items()))
    values = stream.get("values")
    if not isinstance(values, list):
        return "loghttp.PushRequest.Streams: values: expect [ or n", key, []
    entries: list[Entry] = []
    for value in values:
        if not isinstance(value, list) or len(value) not in (2, 3):
            return "loghttp.PushRequest.Streams: values: expect [ts, line]", key, []
        ts, line = value[0], value[1]
        if not isinstance(ts, str) or not ts.isdigit():
            return (
                "loghttp.PushRequest.Streams: values: timestamp must be a string of digits",
                key,
                [],
            )
        if not isinstance(line, str):
            return "loghttp.PushRequest.Streams: values: the line must be a string", key, []
        metadata = value[2] if len(value) == 3 else {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            return "structured metadata must be an object of strings", key, []
        entries.append(Entry(int(ts), line, dict(metadata)))
    return None, key, entries


def _selector(key: StreamKey | tuple[tuple[Any, Any], ...]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"


def _text(status: int, message: str) -> Reply:
    return Reply(status, (message + "\n").encode(), _TEXT)


def _injected(status: int, tenant: str, size: int) -> Reply:
    if status == 429:
        return _text(
            429,
            f"Ingestion rate limit exceeded for user {tenant} (limit: 4194304 "
            f"bytes/sec) while attempting to ingest lines totaling '{size}' bytes, "
            "reduce log volume or contact your Loki administrator to see if the "
            "limit can be increased",
        )
    return _text(status, f"injected {status}")


@contextmanager
def serve(api: FakeLoki) -> Iterator[FakeLoki]:
    """Serve `api` on a free 127.0.0.1 port until the block ends."""
    api.http.start()
    try:
        yield api
    finally:
        api.http.stop()
