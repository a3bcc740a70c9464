"""Server-sent events from a real uvicorn on loopback (in a thread of this process), read
with a bounded streaming client: live events, then a reconnect with Last-Event-ID."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from conveyor.app.access import create_token, open_server_db
from conveyor.server.api import create_app, state_of
from conveyor.testing.net import free_port
from conveyor.testing.server import InMemoryBackend


@dataclass
class Live:
    backend: InMemoryBackend
    url: str
    headers: dict[str, str]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    backend = InMemoryBackend(project="shop")
    backend.add_environment("staging", branch="main")
    backend.deploy("staging", "c1", {"web": "web:1"})  # events 1 and 2
    db = open_server_db(tmp_path)
    token = create_token(db, "viewer").token
    app = create_app(backend, db, hook_secret=None, events_poll=0.05)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(trust_env=False) as c:
        for _ in range(300):
            try:
                c.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                threading.Event().wait(0.05)
    yield Live(backend, url, {"Authorization": f"Bearer {token}"})
    state_of(app).stopping.set()
    server.should_exit = True
    thread.join(timeout=30)
    db.close()


def frames(lines: Iterator[str], count: int) -> list[tuple[int, dict[str, object]]]:
    """The next `count` events of a stream as (id, data)."""
    out: list[tuple[int, dict[str, object]]] = []
    event_id: int | None = None
    for line in lines:
        if line.startswith("id: "):
            event_id = int(line.removeprefix("id: "))
        elif line.startswith("data: "):
            assert event_id is not None
            out.append((event_id, json.loads(line.removeprefix("data: "))))
            if len(out) == count:
                return out
    raise AssertionError(f"the stream ended after {len(out)} of {count} events")


def test_history_then_live_events_then_resume(live: Live) -> None:
    timeout = httpx.Timeout(30)  # bounds a read that never comes; not a speed check
    with httpx.Client(base_url=live.url, trust_env=False, timeout=timeout) as client:
        with client.stream("GET", "/api/v1/events/stream", headers=live.headers) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            lines = s.iter_lines()
            first = frames(lines, 2)
            assert [i for i, _ in first] == [1, 2]
            assert [d["kind"] for _, d in first] == ["release.created", "rollout.succeeded"]
            live.backend.deploy("staging", "c2", {"web": "web:2"})  # while connected
            later = frames(lines, 2)
            assert [i for i, _ in later] == [3, 4]
            assert later[0][1]["subject"] == {
                "project": "shop-staging",
                "environment": "staging",
                "commit": None,
                "pipeline": None,
                "job": None,
                "release": 2,
                "rollout": None,
                "service": None,
                "replica": None,
            }
        live.backend.deploy("staging", "c3", {"web": "web:3"})  # events 5, 6 while away
        resume = live.headers | {"Last-Event-ID": "4"}
        with client.stream("GET", "/api/v1/events/stream", headers=resume) as s:
            assert [i for i, _ in frames(s.iter_lines(), 2)] == [5, 6]
        with client.stream("GET", "/api/v1/events/stream?after=5", headers=live.headers) as s:
            assert [i for i, _ in frames(s.iter_lines(), 1)] == [6]
