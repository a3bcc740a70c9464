"""What the routes return and do, and the audit log of every acting request."""

from __future__ import annotations

import json

from conveyor.server.api import state_of
from tests.unit.server.conftest import World


def audit(w: World) -> list[dict[str, object]]:
    r = w.client.get("/api/v1/audit", headers=w.auth("admin"))
    assert r.status_code == 200
    return list(r.json()["records"])


def test_reads_return_the_backends_views(world: World) -> None:
    h = world.auth("viewer")
    envs = world.client.get("/api/v1/environments", headers=h).json()
    assert [(e["name"], e["state"], e["release"]) for e in envs] == [
        ("staging", "serving", 2),
        ("qa", "empty", None),
        ("production", "empty", None),
    ]
    detail = world.client.get("/api/v1/environments/staging", headers=h).json()
    assert detail["status"]["services"][0]["image"] == "shop-web:2"
    releases = world.client.get("/api/v1/environments/staging/releases", headers=h).json()
    assert [r["number"] for r in releases] == [2, 1]
    jobs = world.client.get(
        f"/api/v1/environments/staging/pipelines/{world.pipeline}/jobs", headers=h
    ).json()
    assert [j["name"] for j in jobs] == ["unit"]
    log = world.client.get(f"/api/v1/environments/staging/jobs/{world.job}/log", headers=h)
    assert log.json()["text"] == "all 12 tests passed\n"
    diff = world.client.get("/api/v1/environments/staging/diff", headers=h).json()
    assert diff["in_sync"] is True and diff["running_commit"] == "c2"


def test_unknown_things_are_404(world: World) -> None:
    h = world.auth("viewer")
    for path in (
        "/api/v1/environments/nope",
        "/api/v1/environments/nope/releases",
        "/api/v1/environments/staging/pipelines/999/jobs",
        "/api/v1/environments/staging/jobs/999/log",
    ):
        r = world.client.get(path, headers=h)
        assert r.status_code == 404, path
        assert r.json()["detail"]


def test_an_action_is_done_and_audited_with_its_actor(world: World) -> None:
    r = world.client.post(
        "/api/v1/environments/qa/promote", json={"from": "staging"}, headers=world.auth("deployer")
    )
    assert r.status_code == 200
    assert r.json()["action"] == "promote" and r.json()["release"] == 1
    assert world.backend.envs["qa"].rollouts[-1].actor == "deployer-token"
    (last, *_) = audit(world)
    assert {k: last[k] for k in ("actor", "role", "action", "target", "outcome", "detail")} == {
        "actor": "deployer-token",
        "role": "deployer",
        "action": "promote",
        "target": "qa",
        "outcome": "ok",
        "detail": {"from": "staging"},
    }


def test_a_refused_action_is_409_and_audited_with_the_reason(world: World) -> None:
    h = world.auth("deployer")
    assert world.client.post("/api/v1/environments/staging/suspend", headers=h).status_code == 200
    r = world.client.post("/api/v1/environments/staging/rollback", headers=h)
    assert r.status_code == 409
    assert "suspended" in r.json()["detail"]
    last = audit(world)[0]
    assert (last["action"], last["outcome"]) == ("rollback", "refused")
    assert "suspended" in str(last["detail"])
    # and an unknown environment is a 404, audited as refused too
    r = world.client.post("/api/v1/environments/nope/suspend", headers=h)
    assert r.status_code == 404
    assert (audit(world)[0]["target"], audit(world)[0]["outcome"]) == ("nope", "refused")


def test_a_denied_action_is_audited_and_changes_nothing(world: World) -> None:
    r = world.client.post("/api/v1/environments/staging/suspend", headers=world.auth("viewer"))
    assert r.status_code == 403
    assert world.backend.envs["staging"].suspended is False
    last = audit(world)[0]
    assert (last["actor"], last["role"], last["action"], last["outcome"]) == (
        "viewer-token",
        "viewer",
        "suspend",
        "denied",
    )


def test_a_request_without_a_valid_token_leaves_no_audit_record(world: World) -> None:
    before = len(audit(world))
    world.client.post("/api/v1/environments/staging/suspend")
    world.client.post(
        "/api/v1/environments/staging/suspend", headers={"Authorization": "Bearer cvr_nope"}
    )
    assert len(audit(world)) == before
    assert world.backend.envs["staging"].suspended is False


def test_a_protected_environment_takes_a_deployer_or_admin(world: World) -> None:
    assert world.backend.envs["production"].protected
    promote = "/api/v1/environments/production/promote"
    body = {"from": "staging"}
    assert world.client.post(promote, json=body, headers=world.auth("viewer")).status_code == 403
    # the gate: release 2 of staging needs an approval first
    r = world.client.post(promote, json=body, headers=world.auth("deployer"))
    assert r.status_code == 409 and "approval" in r.json()["detail"]
    approve = "/api/v1/environments/production/approve"
    viewer_approves = world.client.post(approve, json={"release": 2}, headers=world.auth("viewer"))
    assert viewer_approves.status_code == 403
    ok = world.client.post(approve, json={"release": 2}, headers=world.auth("deployer"))
    assert ok.status_code == 200
    assert world.client.post(promote, json=body, headers=world.auth("admin")).status_code == 200
    assert world.backend.envs["production"].serving is not None
    rollback = "/api/v1/environments/production/rollback"
    assert world.client.post(rollback, headers=world.auth("viewer")).status_code == 403
    assert [(a["action"], a["outcome"]) for a in audit(world)[:6]] == [
        ("rollback", "denied"),
        ("promote", "ok"),
        ("approve", "ok"),
        ("approve", "denied"),
        ("promote", "refused"),
        ("promote", "denied"),
    ]


def test_tokens_through_the_api(world: World) -> None:
    h = world.auth("admin")
    made = world.client.post("/api/v1/tokens", json={"role": "deployer", "name": "ci"}, headers=h)
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith("cvr_")
    ci = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/api/v1/environments", headers=ci).status_code == 200
    listed = world.client.get("/api/v1/tokens", headers=h).json()["tokens"]
    assert "ci" in [t["name"] for t in listed]
    assert token not in json.dumps(listed)
    taken = world.client.post("/api/v1/tokens", json={"role": "viewer", "name": "ci"}, headers=h)
    assert taken.status_code == 409
    assert world.client.delete("/api/v1/tokens/ci", headers=h).status_code == 200
    assert world.client.get("/api/v1/environments", headers=ci).status_code == 401
    assert world.client.delete("/api/v1/tokens/ci", headers=h).status_code == 404
    denied = world.client.post(
        "/api/v1/tokens", json={"role": "admin"}, headers=world.auth("deployer")
    )
    assert denied.status_code == 403
    assert [(a["actor"], a["action"], a["target"], a["outcome"]) for a in audit(world)[:5]] == [
        ("deployer-token", "token.create", "", "denied"),
        ("admin-token", "token.revoke", "ci", "refused"),
        ("admin-token", "token.revoke", "ci", "ok"),
        ("admin-token", "token.create", "ci", "refused"),
        ("admin-token", "token.create", "ci", "ok"),
    ]


def test_events_after_an_id(world: World) -> None:
    h = world.auth("viewer")
    every = world.client.get("/api/v1/events", headers=h).json()
    assert [e["id"] for e in every] == list(range(1, len(every) + 1))
    assert len(every) >= 3
    later = world.client.get(f"/api/v1/events?after={every[1]['id']}", headers=h).json()
    assert later == every[2:]
    assert world.client.get("/api/v1/events?limit=1", headers=h).json() == every[:1]
    assert world.client.get("/api/v1/events?limit=0", headers=h).status_code == 422


def test_the_event_stream_sends_each_event_with_its_id(world: World) -> None:
    """A bounded read: the server is stopping, so the stream ends after what was recorded."""
    state_of(world.client.app).stopping.set()  # type: ignore[arg-type]
    h = world.auth("viewer")
    r = world.client.get("/api/v1/events/stream", headers=h)
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in r.text.split("\n\n") if f.startswith("id:")]
    every = world.client.get("/api/v1/events", headers=h).json()
    assert len(frames) == len(every)
    for frame, event in zip(frames, every, strict=True):
        id_line, data_line = frame.split("\n")
        assert id_line == f"id: {event['id']}"
        assert json.loads(data_line.removeprefix("data: ")) == event
    resumed = world.client.get("/api/v1/events/stream", headers=h | {"Last-Event-ID": "2"})
    ids = [f.split("\n")[0] for f in resumed.text.split("\n\n") if f.startswith("id:")]
    assert ids == [f"id: {e['id']}" for e in every[2:]]


def test_cancel_a_running_pipeline_audited_refused_once_it_ended(world: World) -> None:
    e = world.backend.envs["staging"]
    p = e.pipelines[world.pipeline]
    e.pipelines[p.id] = p.model_copy(update={"status": "running"})
    path = f"/api/v1/environments/staging/pipelines/{p.id}/cancel"
    assert world.client.post(path, headers=world.auth("viewer")).status_code == 403
    assert e.pipelines[p.id].status == "running"
    r = world.client.post(path, headers=world.auth("deployer"))
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "cancel" and e.pipelines[p.id].status == "canceled"
    again = world.client.post(path, headers=world.auth("deployer"))
    assert again.status_code == 409 and "not running" in again.json()["detail"]
    missing = world.client.post(
        "/api/v1/environments/staging/pipelines/999/cancel", headers=world.auth("deployer")
    )
    assert missing.status_code == 404
    outcomes = [(a["action"], a["outcome"], a["detail"]) for a in audit(world)[:4]]
    assert ("cancel", "ok", {"pipeline": p.id}) in outcomes
    assert ("cancel", "denied", {"pipeline": p.id}) in outcomes
    assert (
        "cancel",
        "refused",
        {"pipeline": p.id, "reason": f"pipeline #{p.id} is canceled, not running"},
    ) in outcomes
