"""The logs routes: the same search as `conveyor logs`, and a live tail as server-sent events."""

from __future__ import annotations

import json

from conveyor.server.api import state_of
from tests.unit.server.conftest import World

NOW = 1_800_000_000.0


def seed(w: World) -> None:
    b = w.backend
    b.add_log("staging", "GET /cart 200", ts=NOW - 600, level="info", fields={"status": "200"})
    b.add_log(
        "staging",
        "db timeout",
        ts=NOW - 300,
        level="error",
        service="worker",
        replica="worker-1",
        release=2,
        host="h2",
    )
    b.add_log("staging", "GET /pay 500", ts=NOW - 60, level="error", fields={"status": "500"})
    b.add_log("qa", "qa line", ts=NOW - 10)


def get(w: World, url: str) -> list[dict]:  # type: ignore[type-arg]
    r = w.client.get(url, headers=w.auth("viewer"))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_search_is_newest_first_with_the_cli_filters(world: World) -> None:
    seed(world)
    base = "/api/v1/environments/staging/logs"
    assert [r["message"] for r in get(world, base)] == [
        "GET /pay 500", "db timeout", "GET /cart 200",
    ]  # fmt: skip
    assert [r["message"] for r in get(world, f"{base}?level=error&service=web")] == ["GET /pay 500"]
    assert [r["message"] for r in get(world, f"{base}?field=status=200")] == ["GET /cart 200"]
    assert [r["message"] for r in get(world, f"{base}?grep=timeout")] == ["db timeout"]
    assert [r["message"] for r in get(world, f"{base}?release=2")] == ["db timeout"]
    assert [r["message"] for r in get(world, f"{base}?host=h2")] == ["db timeout"]
    assert get(world, f"{base}?host=h1") == []
    assert [r["message"] for r in get(world, f"{base}?service=web&service=worker&limit=1")] == [
        "GET /pay 500"
    ]
    since = NOW - 400
    assert [r["message"] for r in get(world, f"{base}?since={since}&until={NOW - 100}")] == [
        "db timeout"
    ]
    first = get(world, base)[0]
    assert first["labels"]["replica"] == "web-1"
    assert first["labels"]["environment"] == "staging"
    assert first["labels"]["host"] is None
    assert get(world, f"{base}?host=h2")[0]["labels"]["host"] == "h2"


def test_bad_filters_are_422_naming_the_parameter(world: World) -> None:
    h = world.auth("viewer")
    for query, name in [
        ("since=yesterday-ish", "since"),
        ("field=nokey", "field"),
        ("level=loud", "level"),
        ("stream=stdin", "stream"),
    ]:
        r = world.client.get(f"/api/v1/environments/staging/logs?{query}", headers=h)
        assert r.status_code == 422, (query, r.text)
        assert r.json()["detail"].startswith(f"{name}:"), r.text
    assert (
        world.client.get("/api/v1/environments/staging/logs?limit=0", headers=h).status_code == 422
    )


def test_an_unknown_environment_is_404(world: World) -> None:
    h = world.auth("viewer")
    assert world.client.get("/api/v1/environments/nope/logs", headers=h).status_code == 404
    r = world.client.get("/api/v1/environments/nope/logs/stream", headers=h)
    assert r.status_code == 404


def frames(text: str) -> list[tuple[int, dict]]:  # type: ignore[type-arg]
    out = []
    for frame in text.split("\n\n"):
        if frame.startswith("id:"):
            id_line, data_line = frame.split("\n")
            out.append((int(id_line[4:]), json.loads(data_line.removeprefix("data: "))))
    return out


def test_the_stream_sends_the_backlog_then_what_comes_after(world: World) -> None:
    seed(world)
    state_of(world.client.app).stopping.set()  # type: ignore[arg-type]  # a bounded read
    h = world.auth("viewer")
    url = "/api/v1/environments/staging/logs/stream"
    r = world.client.get(f"{url}?backlog=2&service=web", headers=h)
    assert r.headers["content-type"].startswith("text/event-stream")
    got = frames(r.text)
    assert [d["message"] for _, d in got] == ["GET /cart 200", "GET /pay 500"]  # oldest first
    # a reconnecting client resumes after the last id it saw
    later = world.backend.add_log("staging", "GET /new 200", ts=NOW)
    resumed = world.client.get(url, headers=h | {"Last-Event-ID": str(got[-1][0])})
    assert [(i, d["message"]) for i, d in frames(resumed.text)] == [(later.id, "GET /new 200")]
    # without a backlog or a position: from now on, nothing already there
    assert frames(world.client.get(url, headers=h).text) == []
