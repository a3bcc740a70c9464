"""A small HTTP server answering Elasticsearch's `_bulk` API as Elastic documents it, on a
loopback port. No Elasticsearch or OpenSearch can run here; this stands in for one in the tests
of log shipping (observe.logs.ship), which are therefore not tests against the real servers.

- `POST /_bulk` and `POST /<index>/_bulk`: NDJSON, `Content-Type: application/x-ndjson` (or
  `application/json`); anything else is 406. The body must end with a newline (400
  `illegal_argument_exception` otherwise). Actions `create` and `index` with their source
  line; another action is 400 for the whole request.
- The answer is 200 `{"took", "errors", "items"}` with one item per action, in order:
  `{"create": {"_index", "_id", "_version", "result": "created", "_shards", "_seq_no",
  "_primary_term", "status": 201}}`, or with `status` and `error: {type, reason, index_uuid,
  shard, index}` when the item failed: 409 `version_conflict_engine_exception` for a `create`
  whose `_id` is already in the index, 400 `invalid_index_name_exception` for a bad index name,
  400 `document_parsing_exception` when a field's value does not fit the index's dynamic
  mapping (an object where a value was mapped, or the other way round; a string that is not a
  number where a number was mapped).
- `GET /` answers the cluster's banner.
- Authentication, when `api_key` or `basic` is set: `Authorization: ApiKey <key>` or `Basic
  <base64>`; otherwise 401 `security_exception`.

Faults a test injects (each consumed by the next requests, in order):

- `fail_next`: whole-request statuses: 429 `es_rejected_execution_exception` (the write thread
  pool is full), 503 `unavailable_shards_exception`, any other status with a generic error.
- `reject_items_next`: the next N items answer 429 `es_rejected_execution_exception` (a
  partial failure: the rest of the request is indexed).
- `lose_answers_next`: the next N requests are processed and stored, then the connection is
  closed without an answer (the client cannot know they were).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from conveyor.testing.loopback_http import LoopbackHttp, Reply

_INDEX_FORBIDDEN = re.compile(r'[\\/*?"<>| ,#:]')
_JSON = {"Content-Type": "application/json"}
_NDJSON = ("application/x-ndjson", "application/json")


@dataclass
class BulkRequest:
    path: str
    headers: dict[str, str]
    actions: int
    answered: int | None  # the status sent back; None when the answer was lost


@dataclass
class FakeElasticsearch:
    api_key: str | None = None  # the encoded key `Authorization: ApiKey <key>` must carry
    basic: tuple[str, str] | None = None  # (user, password) for `Authorization: Basic`
    fail_next: list[int] = field(default_factory=list)
    reject_items_next: int = 0
    lose_answers_next: int = 0
    # index -> _id -> source
    indices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[BulkRequest] = field(default_factory=list)
    # index -> field path -> "object" | "long" | "double" | "boolean" | "keyword"
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.http = LoopbackHttp(self.handle, "fake-elasticsearch")

    @property
    def url(self) -> str:
        return self.http.url

    def reset(self) -> None:
        """Forget every index, request and pending fault (a module-scoped server, reused)."""
        with self._lock:
            self.indices.clear()
            self.mappings.clear()
            self.requests.clear()
            self.fail_next.clear()
            self.reject_items_next = self.lose_answers_next = 0

    def documents(self) -> list[dict[str, Any]]:
        with self._lock:
            return [doc for index in self.indices.values() for doc in index.values()]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        route = path.split("?", 1)[0]
        if method == "GET" and route == "/":
            return _json(
                200,
                {
                    "name": "fake",
                    "cluster_name": "conveyor-tests",
                    "version": {"number": "8.15.0"},
                    "tagline": "You Know, for Search",
                },
            )
        if not self._authorized(headers):
            return _error(
                401,
                "security_exception",
                f"missing authentication credentials for REST request [{route}]",
            )
        parts = [p for p in route.split("/") if p]
        if method not in ("POST", "PUT") or not parts or parts[-1] != "_bulk" or len(parts) > 2:
            return _error(
                405 if parts and parts[-1] == "_bulk" else 404,
                "illegal_argument_exception",
                f"no handler for [{method} {route}]",
            )
        default_index = parts[0] if len(parts) == 2 else None
        with self._lock:
            if self.fail_next:
                status = self.fail_next.pop(0)
                self.requests.append(BulkRequest(path, headers, 0, status))
                return _injected(status)
            lose = self.lose_answers_next > 0
            if lose:
                self.lose_answers_next -= 1
            reply, actions = self._bulk(headers, body, default_index)
            self.requests.append(
                BulkRequest(path, headers, actions, None if lose else reply.status)
            )
        return Reply(None) if lose else reply

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.api_key is None and self.basic is None:
            return True
        given = headers.get("authorization", "")
        if self.api_key is not None and given == f"ApiKey {self.api_key}":
            return True
        if self.basic is not None:
            login = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return given == f"Basic {login}"
        return False

    def _bulk(
        self, headers: dict[str, str], body: bytes, default_index: str | None
    ) -> tuple[Reply, int]:
        kind = headers.get("content-type", "").split(";")[0].strip()
        if kind not in _NDJSON:
            return _error(
                406, "media_type_header_exception", f"Content-Type header [{kind}] is not supported"
            ), 0
        if not body.endswith(b"\n"):
            return _error(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            ), 0
        lines = body.decode().split("\n")[:-1]
        pairs: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        i = 0
        while i < len(lines):
            try:
                action_line = json.loads(lines[i])
            except ValueError:
                return _error(
                    400,
                    "x_content_parse_exception",
                    f"[1:1] Malformed action/metadata line [{i + 1}]",
                ), 0
            if not isinstance(action_line, dict) or len(action_line) != 1:
                return _error(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i + 1}], expected a simple "
                    "value for field [_index]",
                ), 0
            action, meta = next(iter(action_line.items()))
            if action not in ("create", "index"):
                return _error(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i + 1}], expected one of "
                    f"[create, delete, index, update] but found [{action}]",
                ), 0
            if i + 1 >= len(lines):
                return _error(
                    400,
                    "illegal_argument_exception",
                    f"The bulk request is missing the source of line [{i + 1}]",
                ), 0
            try:
                source = json.loads(lines[i + 1])
            except ValueError:
                source = None
            pairs.append((action, meta if isinstance(meta, dict) else {}, source))
            i += 2
        started = time.monotonic()
        items = [self._item(action, meta, source, default_index) for action, meta, source in pairs]
        took = int((time.monotonic() - started) * 1000)
        errors = any(next(iter(it.values()))["status"] >= 300 for it in items)
        return _json(200, {"took": took, "errors": errors, "items": items}), len(pairs)

    def _item(
        self, action: str, meta: dict[str, Any], source: Any, default_index: str | None
    ) -> dict[str, Any]:
        index = meta.get("_index") or default_index or ""
        doc_id = meta.get("_id") or uuid.uuid4().hex[:20]
        head = {"_index": index, "_id": doc_id}
        if self.reject_items_next > 0:
            self.reject_items_next -= 1
            return {
                action: {
                    **head,
                    "status": 429,
                    "error": {
                        "type": "es_rejected_execution_exception",
                        "reason": "rejected execution of coordinating operation [shard_detail=["
                        + index
                        + "][0][p], shard_coordinating_and_primary_bytes=0, "
                        "shard_operation_bytes=1024, shard_max_coordinating_and_primary_bytes="
                        "0]",
                    },
                }
            }
        problem = _index_problem(index)
        if problem is not None:
            return {
                action: {
                    **head,
                    "status": 400,
                    "error": {
                        "type": "invalid_index_name_exception",
                        "reason": f"Invalid index name [{index}], {problem}",
                        "index": index,
                    },
                }
            }
        if not isinstance(source, dict):
            return {
                action: {
                    **head,
                    "status": 400,
                    "error": {
                        "type": "document_parsing_exception",
                        "reason": "[1:1] failed to parse: the source is not a JSON object",
                    },
                }
            }
        docs = self.indices.setdefault(index, {})
        if action == "create" and doc_id in docs:
            return {
                action: {
                    **head,
                    "status": 409,
                    "error": {
                        "type": "version_conflict_engine_exception",
                        "reason": f"[{doc_id}]: version conflict, document already exists (current "
                        "version [1])",
                        "index_uuid": _uuid(index),
                        "shard": "0",
                        "index": index,
                    },
                }
            }
        conflict = self._map(index, source, doc_id)
        if conflict is not None:
            return {
                action: {
                    **head,
                    "status": 400,
                    "error": {"type": "document_parsing_exception", "reason": conflict},
                }
            }
        created = doc_id not in docs
        docs[doc_id] = source
        self._seq += 1
        return {
            action: {
                **head,
                "_version": 1,
                "result": "created" if created else "updated",
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": self._seq,
                "_primary_term": 1,
                "status": 201 if created else 200,
            }
        }

    def _map(self, index: str, source: dict[str, Any], doc_id: str) -> str | None:
        """Dynamic mapping: the first value seen at a path fixes its type; a later document
        that does not fit is refused (nothing is mapped from it)."""
        mapping = self.mappings.setdefault(index, {})
        found: dict[str, str] = {}
        for path, value in _leaves(source):
            kind = _kind(value)
            known = mapping.get(path) or found.get(path)
            if known is None:
                found[path] = kind
                continue
            if known == kind or (known == "double" and kind == "long"):
                continue
            if known == "object" or kind == "object":
                return (
                    f"object mapping for [{path}] tried to parse field [{path}] as "
                    f"{'object' if kind == 'object' else 'a concrete value'}, but found "
                    f"{'a concrete value' if kind != 'object' else 'an object'}"
                )
            if known in ("long", "double") and kind == "keyword" and _numeric(value):
                continue  # coerced, as Elasticsearch does
            if known == "keyword":
                continue  # numbers and booleans index as strings in a keyword field
            preview = str(value)[:20]
            return (
                f"[1:1] failed to parse field [{path}] of type [{known}] in document with "
                f"id '{doc_id}'. Preview of field's value: '{preview}'"
            )
        mapping.update(found)
        return None


def _leaves(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        # Elasticsearch expands dots in field names into objects.
        path = f"{prefix}{key}"
        parts = path.split(".")
        for depth in range(1, len(parts)):
            yield ".".join(parts[:depth]), {}
        if isinstance(value, dict):
            yield path, {}
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return "keyword"


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _index_problem(name: str) -> str | None:
    if not name:
        return "must not be empty"
    if name != name.lower():
        return "must be lowercase"
    bad = _INDEX_FORBIDDEN.search(name)
    if bad:
        return f"must not contain the following characters [{bad.group()}]"
    if name.startswith(("-", "_", "+")):
        return "must not start with '_', '-', or '+'"
    return None


def _uuid(index: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, index).hex[:22]


def _json(status: int, payload: Any) -> Reply:
    return Reply(status, json.dumps(payload).encode(), _JSON)


def _error(status: int, kind: str, reason: str) -> Reply:
    cause = {"type": kind, "reason": reason}
    return _json(status, {"error": {"root_cause": [cause], **cause}, "status": status})


def _injected(status: int) -> Reply:
    if status == 429:
        return _error(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_"
            "bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, "
            "max_coordinating_and_primary_bytes=0]",
        )
    if status == 503:
        return _error(
            503,
            "unavailable_shards_exception",
            "[conveyor][0] primary shard is not active Timeout: [1m]",
        )
    return _error(status, "exception", f"injected {status}")


@contextmanager
def serve(api: FakeElasticsearch) -> Iterator[FakeElasticsearch]:
    """Serve `api` on a free 127.0.0.1 port until the block ends."""
    api.http.start()
    try:
        yield api
    finally:
        api.http.stop()
