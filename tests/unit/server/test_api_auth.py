"""Every route's authentication and role: 401 without a valid token, 403 for a role too low,
2xx with the role it needs."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.app.access import revoke_token
from conveyor.model.access import ROLES, Role
from conveyor.server.api import state_of
from tests.unit.server.conftest import World

# (method, path, json body, the lowest role allowed); {pipeline} and {job} are the fixture's.
ROUTES: list[tuple[str, str, dict[str, Any] | None, Role]] = [
    ("GET", "/api/v1/environments", None, "viewer"),
    ("GET", "/api/v1/environments/staging", None, "viewer"),
    ("GET", "/api/v1/environments/staging/releases", None, "viewer"),
    ("GET", "/api/v1/environments/staging/rollouts", None, "viewer"),
    ("GET", "/api/v1/environments/staging/pipelines", None, "viewer"),
    ("GET", "/api/v1/environments/staging/pipelines/{pipeline}/jobs", None, "viewer"),
    ("GET", "/api/v1/environments/staging/jobs/{job}/log", None, "viewer"),
    ("GET", "/api/v1/environments/staging/timeline", None, "viewer"),
    ("GET", "/api/v1/environments/staging/diff", None, "viewer"),
    ("GET", "/api/v1/events", None, "viewer"),
    ("GET", "/api/v1/events/stream", None, "viewer"),
    ("GET", "/api/v1/environments/staging/logs", None, "viewer"),
    ("GET", "/api/v1/environments/staging/logs/stream", None, "viewer"),
    ("POST", "/api/v1/environments/qa/promote", {"from": "staging"}, "deployer"),
    ("POST", "/api/v1/environments/staging/rollback", {"to_release": 1}, "deployer"),
    ("POST", "/api/v1/environments/staging/suspend", None, "deployer"),
    ("POST", "/api/v1/environments/staging/resume", None, "deployer"),
    ("POST", "/api/v1/environments/production/approve", {"release": 2}, "deployer"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens", {"role": "viewer", "name": "new"}, "admin"),
    ("DELETE", "/api/v1/tokens/viewer-token", None, "admin"),
    ("GET", "/api/v1/audit", None, "admin"),
]
IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]


def call(w: World, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    url = path.format(pipeline=w.pipeline, job=w.job)
    if url.endswith("/stream"):
        state_of(w.client.app).stopping.set()  # type: ignore[arg-type]  # a bounded read
    return w.client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "role"), ROUTES, ids=IDS)
def test_no_token_is_401(world: World, method: str, path: str, body: Any, role: Role) -> None:
    r = call(world, method, path, body, {})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body", "role"), ROUTES, ids=IDS)
def test_an_unknown_or_revoked_token_is_401(
    world: World, method: str, path: str, body: Any, role: Role
) -> None:
    bad = {"Authorization": "Bearer cvr_" + "A" * 43}
    assert call(world, method, path, body, bad).status_code == 401
    basic = {"Authorization": "Basic " + world.tokens["admin"]}
    assert call(world, method, path, body, basic).status_code == 401
    revoke_token(world.db, "admin-token")
    r = call(world, method, path, body, world.auth("admin"))
    assert r.status_code == 401
    assert "invalid_token" in r.headers["www-authenticate"]


ACTING = [r for r in ROUTES if r[3] != "viewer"]  # every role may read


@pytest.mark.parametrize(
    ("method", "path", "body", "role"), ACTING, ids=[f"{m} {p}" for m, p, _, _ in ACTING]
)
def test_a_role_too_low_is_403(world: World, method: str, path: str, body: Any, role: Role) -> None:
    for r in ROLES[: ROLES.index(role)]:
        answer = call(world, method, path, body, world.auth(r))
        assert answer.status_code == 403, (r, answer.text)
        assert f"needs the {role} role" in answer.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "role"), ROUTES, ids=IDS)
def test_the_role_needed_and_above_are_served(
    world: World, method: str, path: str, body: Any, role: Role
) -> None:
    for r in ROLES[ROLES.index(role) :]:
        answer = call(world, method, path, body, world.auth(r))
        assert answer.status_code in (200, 201), (r, answer.text)
        if path.endswith("/tokens/viewer-token"):
            break  # revoked now: a second DELETE is a 404


def test_health_needs_no_token(world: World) -> None:
    r = world.client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_the_openapi_document_lists_every_route(world: World) -> None:
    doc = world.client.get("/api/v1/openapi.json").json()
    served = {
        (m.lower(), route.path)  # type: ignore[attr-defined]
        for route in world.client.app.routes  # type: ignore[attr-defined]
        for m in getattr(route, "methods", ()) or ()
        if route.path.startswith(
            (
                "/api/v1/environments",
                "/api/v1/events",
                "/api/v1/tokens",
                "/api/v1/audit",
                "/hooks",
                "/healthz",
            )
        )
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served <= documented
    # the routes of the brief and docs/server.md, one by one
    for method, path, _, _ in ROUTES:
        p = path.replace("{pipeline}", "{pipeline_id}").replace("{job}", "{job_id}")
        p = (
            p.replace("/staging", "/{env}")
            .replace("/qa", "/{env}")
            .replace("/production", "/{env}")
        )
        p = p.replace("/viewer-token", "/{name}")
        assert (method.lower(), p) in documented, p
    for hook in ("gitlab", "github", "generic"):
        assert ("post", f"/hooks/{hook}") in documented
    assert ("get", "/healthz") in documented
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    assert world.client.get("/api/v1/docs").status_code == 200
