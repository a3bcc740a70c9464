"""The Elasticsearch `_bulk` format: the NDJSON a batch becomes, and what each answer means for
each record (the answers as Elasticsearch documents them)."""

from __future__ import annotations

import base64
import json
from typing import Any

from conveyor.model.log_shipping import ElasticsearchDestination
from conveyor.observe.logs.ship.elasticsearch import ElasticsearchFormat, bulk_body, doc_id
from conveyor.observe.logs.ship.verdict import Answer
from tests.unit.observe.ship_records import T0, record

DEST = ElasticsearchDestination(name="es", url="http://127.0.0.1:9200")


def answer(status: int, payload: Any, **headers: str) -> Answer:
    return Answer(status, headers, json.dumps(payload).encode())


def item(status: int, error: str | None = None, reason: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"_index": "conveyor-2025.12.06", "_id": "x", "status": status}
    if error:
        body["error"] = {"type": error, "reason": reason}
    return {"create": body}


def test_a_batch_is_action_and_document_lines_ending_in_a_newline() -> None:
    records = [
        record(1, level="error", fields={"path": "/cart"}),
        record(2, ts=T0 + 86_400 - 0.5, level=None, service=None, replica=None),
    ]
    body = bulk_body(records, "conveyor-%Y.%m.%d")
    assert body.endswith(b"\n")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len(lines) == 4
    assert lines[0] == {"create": {"_index": "conveyor-2025.12.06", "_id": doc_id(records[0])}}
    assert lines[1] == {
        "@timestamp": "2025-12-06T10:00:01.000000Z",
        "message": "line 1",
        "log": {"level": "error"},
        "conveyor": {
            "project": "shop",
            "environment": "production",
            "service": "web",
            "replica": "web-1",
            "release": 7,
            "container": "c0ffee1",
            "stream": "stdout",
        },
        "fields": {"path": "/cart"},
    }
    # The index follows the record's own day (UTC), not the day it is sent.
    assert lines[2]["create"]["_index"] == "conveyor-2025.12.07"
    assert "log" not in lines[3] and "service" not in lines[3]["conveyor"]


def test_the_id_is_stable_and_tells_records_apart() -> None:
    assert doc_id(record(1)) == doc_id(record(1))
    assert doc_id(record(1)) != doc_id(record(2))
    # Two identical lines at the same instant are two records when the store numbered them.
    twin = record(1).model_copy(update={"id": 99})
    assert doc_id(twin) != doc_id(record(1))
    assert len(doc_id(record(1))) == 40


def test_request_headers_and_credentials() -> None:
    fmt = ElasticsearchFormat(DEST, {})
    req = fmt.request([record(1)])
    assert req.url == "http://127.0.0.1:9200/_bulk"
    assert req.headers["Content-Type"] == "application/x-ndjson"
    assert "Authorization" not in req.headers

    keyed = DEST.model_copy(update={"api_key_env": "K"})
    assert (
        ElasticsearchFormat(keyed, {"K": "abc=="}).request([]).headers["Authorization"]
        == "ApiKey abc=="
    )
    login = DEST.model_copy(update={"username": "u", "password_env": "P"})
    header = ElasticsearchFormat(login, {"P": "pw"}).request([]).headers["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")) == b"u:pw"


def test_every_item_settled_when_errors_is_false() -> None:
    fmt = ElasticsearchFormat(DEST, {})
    v = fmt.verdict(
        [record(1), record(2)], answer(200, {"errors": False, "items": [item(201)] * 2})
    )
    assert (v.retry, v.rejected, v.duplicates) == ((), (), 0)


def test_items_are_read_one_by_one() -> None:
    fmt = ElasticsearchFormat(DEST, {})
    items = [
        item(201),
        item(409, "version_conflict_engine_exception", "document already exists"),
        item(429, "es_rejected_execution_exception", "rejected execution"),
        item(400, "document_parsing_exception", "failed to parse field [fields.user]"),
        item(503, "unavailable_shards_exception", "primary shard is not active"),
        item(404, "index_not_found_exception", "no such index"),
    ]
    v = fmt.verdict([record(i) for i in range(6)], answer(200, {"errors": True, "items": items}))
    assert v.duplicates == 1  # already there from an earlier send: delivered
    assert v.retry == (2, 4)
    assert [(r.position, r.status) for r in v.rejected] == [(3, 400), (5, 404)]
    assert v.rejected[0].reason == (
        "400 document_parsing_exception: failed to parse field [fields.user]"
    )
    assert v.problem == "429 es_rejected_execution_exception: rejected execution"


def test_whole_request_answers() -> None:
    fmt = ElasticsearchFormat(DEST, {})
    two = [record(1), record(2)]
    busy = answer(
        429,
        {"error": {"type": "es_rejected_execution_exception", "reason": "busy"}},
        **{"retry-after": "7"},
    )
    v = fmt.verdict(two, busy)
    assert v.retry == (0, 1) and v.retry_after == 7.0
    assert v.problem == "HTTP 429: es_rejected_execution_exception: busy"
    assert fmt.verdict(two, answer(503, {})).retry == (0, 1)
    denied = fmt.verdict(two, answer(401, {"error": {"type": "security_exception"}}))
    assert denied.retry == (0, 1) and "check the URL and the credentials" in (denied.problem or "")
    bad = fmt.verdict(two, answer(400, {"error": {"type": "illegal_argument_exception"}}))
    assert [r.position for r in bad.rejected] == [0, 1] and bad.retry == ()
    assert fmt.verdict(two, answer(413, {})).split
    assert [r.status for r in fmt.verdict([record(1)], answer(413, {})).rejected] == [413]


def test_an_answer_that_does_not_account_for_every_record_is_sent_again() -> None:
    fmt = ElasticsearchFormat(DEST, {})
    two = [record(1), record(2)]
    assert fmt.verdict(two, Answer(200, {}, b"<html>proxy</html>")).retry == (0, 1)
    short = answer(200, {"errors": False, "items": [item(201)]})
    assert fmt.verdict(two, short).retry == (0, 1)


def test_a_fleet_hosts_name_is_a_label_and_the_id_stays() -> None:
    here = record(1)
    on_h2 = here.model_copy(update={"labels": here.labels.model_copy(update={"host": "h2"})})
    docs = [json.loads(x) for x in bulk_body([here, on_h2], "conveyor-%Y.%m.%d").splitlines()]
    assert "host" not in docs[1]["conveyor"]
    assert docs[3]["conveyor"]["host"] == "h2"
    assert doc_id(here) == doc_id(on_h2)  # the id of a record shipped before is unchanged
