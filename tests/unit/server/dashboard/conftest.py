"""The dashboard over the in-memory backend (the API tests' world), in process."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from starlette.exceptions import StarletteDeprecationWarning

from conveyor.app.access import ServerDatabase, create_token, open_server_db
from conveyor.app.server_views import CommitView
from conveyor.model.access import Role
from conveyor.server.api import create_app
from conveyor.server.dashboard import install_dashboard
from conveyor.testing.server import InMemoryBackend
from tests.unit.server.conftest import make_backend

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Dash:
    backend: InMemoryBackend
    db: ServerDatabase
    client: TestClient
    tokens: dict[Role, str]

    def sign_in(self, role: Role) -> None:
        form = self.client.get("/signin")
        assert form.status_code == 200
        r = self.client.post(
            "/signin",
            data={"token": self.tokens[role], "csrf_token": csrf(form.text), "next": "/"},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text

    def csrf(self, path: str = "/") -> str:
        r = self.client.get(path)
        assert r.status_code == 200, r.text
        return csrf(r.text)


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, html
    return found.group(1)


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dash]:
    structlog.reset_defaults()
    backend, _pipeline, _job = make_backend()
    backend.commits["c2"] = CommitView(
        sha="c2", author="Dev One <dev@example.test>", title="Faster checkout", committed_at=""
    )
    db = open_server_db(tmp_path / "server")
    tokens: dict[Role, str] = {
        r: create_token(db, r, f"{r}-token").token for r in ("viewer", "deployer", "admin")
    }
    app = create_app(backend, db, hook_secret=None)
    install_dashboard(app)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield Dash(backend, db, client, tokens)
    db.close()
