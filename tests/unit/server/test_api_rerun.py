"""The retry and play routes: deployer only, audited whatever the outcome, 409 with the
backend's reason when the job cannot be run again, 404 for a job of another pipeline."""

from __future__ import annotations

from tests.unit.server.conftest import World
from tests.unit.server.test_api_actions import audit


def test_retry_a_failed_job_audited_refused_when_not_failed(world: World) -> None:
    b = world.backend
    p = b.add_pipeline("staging", "c3", "failed", {"unit": ("failed", "1 test failed\n")})
    failed = b.envs["staging"].jobs[p.id][0]
    path = f"/api/v1/environments/staging/pipelines/{p.id}/jobs/{failed.id}/retry"
    assert world.client.post(path, headers=world.auth("viewer")).status_code == 403
    assert b.envs["staging"].pipelines[p.id].status == "failed"

    r = world.client.post(path, headers=world.auth("deployer"))
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "retry"
    jobs = b.envs["staging"].jobs[p.id]
    assert [(j.name, j.status, j.attempt, j.retry_of) for j in jobs] == [
        ("unit", "failed", 1, None),
        ("unit", "success", 2, failed.id),
    ]
    assert b.envs["staging"].pipelines[p.id].status == "success"

    again = world.client.post(path, headers=world.auth("deployer"))
    assert again.status_code == 409 and "not the latest attempt" in again.json()["detail"]
    other = world.client.post(
        f"/api/v1/environments/staging/pipelines/{world.pipeline}/jobs/{failed.id}/retry",
        headers=world.auth("deployer"),
    )
    assert other.status_code == 404  # the job is not of that pipeline
    outcomes = [(a["action"], a["outcome"], a["detail"]) for a in audit(world)[:4]]
    detail = {"pipeline": p.id, "job": failed.id}
    assert ("retry", "ok", detail) in outcomes
    assert ("retry", "denied", detail) in outcomes
    assert (
        "retry",
        "refused",
        detail | {"reason": f"job #{failed.id} is not the latest attempt of unit"},
    ) in outcomes


def test_play_a_manual_job_and_not_a_finished_one(world: World) -> None:
    b = world.backend
    p = b.add_pipeline("staging", "c4", "manual", {"deploy": ("manual", "")})
    manual = b.envs["staging"].jobs[p.id][0]
    base = f"/api/v1/environments/staging/pipelines/{p.id}/jobs/{manual.id}"
    assert world.client.post(base + "/play", headers=world.auth("viewer")).status_code == 403
    assert world.client.post(base + "/retry", headers=world.auth("deployer")).status_code == 409
    r = world.client.post(base + "/play", headers=world.auth("deployer"))
    assert r.status_code == 200 and r.json()["action"] == "play"
    assert [(j.id, j.status) for j in b.envs["staging"].jobs[p.id]] == [(manual.id, "success")]
    assert b.envs["staging"].pipelines[p.id].status == "success"
    twice = world.client.post(base + "/play", headers=world.auth("deployer"))
    assert twice.status_code == 409 and "success" in twice.json()["detail"]
    missing = world.client.post(
        f"/api/v1/environments/staging/pipelines/999/jobs/{manual.id}/play",
        headers=world.auth("deployer"),
    )
    assert missing.status_code == 404
