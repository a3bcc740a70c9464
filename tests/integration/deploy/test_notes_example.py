"""examples/notes, an ordinary Compose app, brought up by the real `conveyor` command: a web
app (2 replicas) that finds PostgreSQL at `db:5432` and Redis at `cache:6379` by name through
their service addresses, PostgreSQL's data in a named volume.

An override file makes the project network `internal` (test traffic stays on this machine);
the published port is a free one on 127.0.0.1, set through the example's `.env`.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing.load import LoadGenerator
from conveyor.testing.net import free_port
from tests.integration.deploy.conftest import ROOT, Shop, tear_down

EXAMPLE = ROOT / "examples" / "notes"
OVERRIDE = "test-override.yaml"


def call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.status < 300, (resp.status, payload)
        return json.loads(payload)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[Shop]:
    d: Path = tmp_path_factory.mktemp("notes")
    shutil.copytree(EXAMPLE, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".conveyor"))
    port = free_port()
    (d / ".env").write_text(f"NOTES_PORT={port}\nNOTES_VERSION=1.0.0\n")
    # internal: no way out of the machine; a short grace period: draining PostgreSQL waits for
    # the web replicas' pooled sessions to end, up to that period, when it is replaced
    (d / OVERRIDE).write_text(
        "networks:\n  default:\n    internal: true\nservices:\n  db:\n    stop_grace_period: 5s\n"
    )
    app = Shop(
        dir=d, project=f"notes-{uuid.uuid4().hex[:6]}", gateway_port=port, overrides=(OVERRIDE,)
    )
    app.conveyor("up", timeout=900)
    yield app
    tear_down(app, "--volumes")  # the database's volume too


def healthy(app: Shop) -> bool:
    try:
        return bool(call(app.gateway_port, "GET", "/health")["status"] == "ok")
    except (OSError, AssertionError):
        return False


def running(app: Shop, service: str) -> int:
    views = app.status()["services"]
    return int(next(v["running_replicas"] for v in views if v["name"] == service))


def version(app: Shop) -> set[str]:
    return {call(app.gateway_port, "GET", "/health")["version"] for _ in range(6)}


def test_web_finds_postgres_and_redis_by_name(notes: Shop) -> None:
    written = call(notes.gateway_port, "POST", "/notes", {"text": "before the rollout"})
    first = call(notes.gateway_port, "GET", f"/notes/{written['id']}")
    second = call(notes.gateway_port, "GET", f"/notes/{written['id']}")
    assert first["text"] == "before the rollout"
    assert second["reads"] == first["reads"] + 1  # counted in Redis
    # both web replicas answer behind the published port
    replicas = {call(notes.gateway_port, "GET", "/notes")["replica"] for _ in range(10)}
    assert len(replicas) == 2, replicas
    # db and cache are service addresses: their names lead to HAProxy, not to a replica
    assert len(notes.addresses()) == 3


def test_rolling_the_app_and_killing_replicas_under_load_loses_nothing(notes: Shop) -> None:
    ids = [
        call(notes.gateway_port, "POST", "/notes", {"text": f"note {i}"})["id"] for i in range(5)
    ]
    env = notes.dir / ".env"
    env.write_text(env.read_text().replace("NOTES_VERSION=1.0.0", "NOTES_VERSION=2.0.0"))
    # every request reads PostgreSQL and Redis: north-south and east-west traffic at once
    with LoadGenerator(notes.gateway_port, f"/notes/{ids[0]}", workers=4, max_seconds=240) as load:
        time.sleep(0.5)
        out = notes.conveyor("deploy")
        time.sleep(0.5)
        victim = sorted(notes.containers("io.conveyor.service=web"))[0]
        subprocess.run(["docker", "kill", "-s", "KILL", victim], check=True, capture_output=True)
        notes.wait_for(
            lambda: (
                running(notes, "web") == 2
                and any(r["kind"] == "heal" for r in notes.history()["rollouts"])
            ),
            timeout=90,
            what="the agent to replace the killed web replica",
        )
        time.sleep(1)
    res = load.result
    assert res.requests > 100, res.summary()
    assert res.failures == 0, (res.summary(), res.errors, out.stderr)
    assert version(notes) == {"2.0.0"}
    for note_id in ids:
        assert call(notes.gateway_port, "GET", f"/notes/{note_id}")["text"].startswith("note ")


def test_database_data_survives_its_own_replacement(notes: Shop) -> None:
    kept = call(notes.gateway_port, "POST", "/notes", {"text": "kept in the volume"})
    notes.edit(lambda doc: doc["services"]["db"]["environment"].update({"TZ": "UTC"}))
    notes.conveyor("deploy")
    notes.wait_for(
        lambda: healthy(notes),
        timeout=60,
        what="the app to reconnect to the new database replica",
    )
    assert call(notes.gateway_port, "GET", f"/notes/{kept['id']}")["text"] == "kept in the volume"
    listed = [n["text"] for n in call(notes.gateway_port, "GET", "/notes")["notes"]]
    assert "before the rollout" in listed
