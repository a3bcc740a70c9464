"""An API over the in-memory backend: staging (fed by main, two releases), qa (promoted from
staging), production (promoted from staging, protected, needs an approval), and one token
per role."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from starlette.exceptions import StarletteDeprecationWarning

from conveyor.app.access import ServerDatabase, create_token, open_server_db
from conveyor.model.access import Role
from conveyor.server.api import create_app
from conveyor.testing.server import InMemoryBackend

with warnings.catch_warnings():
    # Starlette will want its fork of httpx (httpx2) for its test client; httpx still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SECRET = "hook-secret-for-tests"


@dataclass
class World:
    backend: InMemoryBackend
    db: ServerDatabase
    client: TestClient
    tokens: dict[Role, str]
    pipeline: int
    job: int

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_backend() -> tuple[InMemoryBackend, int, int]:
    b = InMemoryBackend(project="shop")
    b.add_environment("staging", branch="main", desired_commit="c2")
    b.add_environment("qa", promote_from="staging")
    b.add_environment("production", promote_from="staging", protected=True, needs_approval=True)
    b.deploy("staging", "c1", {"web": "shop-web:1"})
    b.deploy("staging", "c2", {"web": "shop-web:2"})
    p = b.add_pipeline("staging", "c2", "success", {"unit": ("success", "all 12 tests passed\n")})
    job = b.envs["staging"].jobs[p.id][0].id
    return b, p.id, job


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # another test's CLI run may have left structlog writing to a stream pytest has closed
    structlog.reset_defaults()
    backend, pipeline, job = make_backend()
    db = open_server_db(tmp_path / "server")
    tokens: dict[Role, str] = {
        r: create_token(db, r, f"{r}-token").token for r in ("viewer", "deployer", "admin")
    }
    app = create_app(backend, db, hook_secret=SECRET)
    with TestClient(app) as client:
        yield World(backend, db, client, tokens, pipeline, job)
    db.close()
