"""The Loki push format: streams by low-cardinality labels, entries sorted by time, the rest of
a record in its JSON line; what Loki's answers mean."""

from __future__ import annotations

import json

from conveyor.model.log_shipping import LokiDestination
from conveyor.observe.logs.ship.loki import LokiFormat, push_body
from conveyor.observe.logs.ship.verdict import Answer
from tests.unit.observe.ship_records import T0, record

DEST = LokiDestination(name="loki", url="http://127.0.0.1:3100")


def test_streams_by_label_sorted_by_time_with_the_rest_in_the_line() -> None:
    records = [
        record(3, replica="web-2"),
        record(1, stream="stderr", level="error", fields={"path": "/cart"}),
        record(2, replica="web-2"),
        record(4, ts=T0 + 0.25, service="worker", replica="worker-1"),
    ]
    body = json.loads(push_body(records, ("project", "environment", "service", "stream")))
    streams = {tuple(sorted(s["stream"].items())): s["values"] for s in body["streams"]}
    web_out = (
        ("environment", "production"),
        ("project", "shop"),
        ("service", "web"),
        ("stream", "stdout"),
    )
    assert set(streams) == {
        web_out,
        (
            ("environment", "production"),
            ("project", "shop"),
            ("service", "web"),
            ("stream", "stderr"),
        ),
        (
            ("environment", "production"),
            ("project", "shop"),
            ("service", "worker"),
            ("stream", "stdout"),
        ),
    }
    # Two replicas share a stream; their entries are in time order whatever the batch's order.
    values = streams[web_out]
    assert [v[0] for v in values] == ["1765015202000000000", "1765015203000000000"]
    line = json.loads(values[0][1])
    assert line == {
        "message": "line 2",
        "level": "info",
        "replica": "web-2",
        "release": 7,
        "container": "c0ffee2",
    }
    err = json.loads(
        next(s["values"] for s in body["streams"] if s["stream"]["stream"] == "stderr")[0][1]
    )
    assert err["fields"] == {"path": "/cart"} and err["level"] == "error"
    # Timestamps are strings of nanoseconds (Loki refuses numbers).
    worker = next(s for s in body["streams"] if s["stream"]["service"] == "worker")
    assert worker["values"][0][0] == "1765015200250000000"


def test_a_label_not_listed_goes_into_the_line_and_a_stream_always_has_one() -> None:
    body = json.loads(push_body([record(1, service=None, environment=None)], ("service", "level")))
    (stream,) = body["streams"]
    assert stream["stream"] == {"level": "info"}
    line = json.loads(stream["values"][0][1])
    assert line["project"] == "shop" and line["stream"] == "stdout" and "level" not in line
    bare = json.loads(push_body([record(1, service=None, level=None)], ("service", "level")))
    assert bare["streams"][0]["stream"] == {"project": "shop"}


def test_the_same_record_renders_the_same_entry() -> None:
    # What lets Loki keep one copy of a record sent twice.
    assert push_body([record(5)], DEST.labels) == push_body([record(5)], DEST.labels)


def test_headers_and_answers() -> None:
    dest = DEST.model_copy(update={"tenant": "team-a", "username": "u", "password_env": "P"})
    fmt = LokiFormat(dest, {"P": "pw"})
    req = fmt.request([record(1)])
    assert req.url == "http://127.0.0.1:3100/loki/api/v1/push"
    assert req.headers["X-Scope-OrgID"] == "team-a"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Authorization"].startswith("Basic ")

    two = [record(1), record(2)]
    assert fmt.verdict(two, Answer(204, {}, b"")).retry == ()
    limited = fmt.verdict(two, Answer(429, {}, b"Ingestion rate limit exceeded for user fake\n"))
    assert limited.retry == (0, 1)
    assert limited.problem == "HTTP 429: Ingestion rate limit exceeded for user fake"
    assert fmt.verdict(two, Answer(500, {}, b"")).retry == (0, 1)
    old = fmt.verdict(two, Answer(400, {}, b"entry too far behind,\ntotal ignored: 1 out of 2"))
    assert [r.position for r in old.rejected] == [0, 1] and old.retry == ()
    assert old.rejected[0].reason == "HTTP 400: entry too far behind, total ignored: 1 out of 2"


def test_a_fleet_hosts_name_is_in_the_line() -> None:
    on_h2 = record(1)
    on_h2 = on_h2.model_copy(update={"labels": on_h2.labels.model_copy(update={"host": "h2"})})
    line = json.loads(json.loads(push_body([on_h2], DEST.labels))["streams"][0]["values"][0][1])
    assert line["host"] == "h2"
    here = json.loads(json.loads(push_body([record(1)], DEST.labels))["streams"][0]["values"][0][1])
    assert "host" not in here
