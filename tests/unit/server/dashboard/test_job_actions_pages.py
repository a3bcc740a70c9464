"""Retry and Play on the pipeline and job pages, in process over the in-memory backend: the
buttons a deployer gets (and a viewer does not), the confirm step, CSRF, the audit record, the
refusal shown when the job can no longer be run again."""

from __future__ import annotations

from conveyor.app.ci_views import PipelineView
from conveyor.server.dashboard.job_rerun import rerun_actions
from conveyor.testing.server import InMemoryBackend
from tests.unit.server.dashboard.conftest import Dash, csrf


def _failed_pipeline(dash: Dash) -> tuple[int, dict[str, int]]:
    p = dash.backend.add_pipeline(
        "staging",
        "c3",
        "failed",
        {"build": ("success", "built\n"), "unit": ("failed", "1 failed\n"), "ship": ("manual", "")},
    )
    return p.id, {j.name: j.id for j in dash.backend.envs["staging"].jobs[p.id]}


def test_the_buttons_follow_the_jobs_and_the_pipeline() -> None:
    b = InMemoryBackend()
    b.add_environment("staging", branch="main")
    p = b.add_pipeline(
        "staging", "c1", "failed",
        {"a": ("failed", ""), "b": ("canceled", ""), "c": ("manual", ""), "d": ("success", "")},
    )  # fmt: skip
    view = b.pipeline("staging", p.id)
    ids = {j.name: j.id for j in view.jobs}
    assert rerun_actions(view) == {ids["a"]: "retry", ids["b"]: "retry", ids["c"]: "play"}
    running = view.model_copy(update={"status": "running"})
    assert rerun_actions(running) == {}
    # a retried job offers its button on its newest attempt only
    newer = view.jobs[0].model_copy(update={"id": 99, "attempt": 2, "status": "failed"})
    again = PipelineView.model_validate(view.model_dump() | {"jobs": [*view.jobs, newer]})
    assert rerun_actions(again)[99] == "retry" and ids["a"] not in rerun_actions(again)


def test_a_deployer_retries_a_failed_job_through_the_confirm_step(dash: Dash) -> None:
    pid, ids = _failed_pipeline(dash)
    dash.sign_in("deployer")
    base = f"/environments/staging/pipelines/{pid}"
    page = dash.client.get(base).text
    assert f'href="{base}/jobs/{ids["unit"]}/retry"' in page
    assert f'href="{base}/jobs/{ids["ship"]}/play"' in page
    assert f"{base}/jobs/{ids['build']}/retry" not in page  # a success offers nothing
    job_page = dash.client.get(f"{base}/jobs/{ids['unit']}").text
    assert f'href="{base}/jobs/{ids["unit"]}/retry"' in job_page

    confirm = dash.client.get(f"{base}/jobs/{ids['unit']}/retry")
    assert confirm.status_code == 200 and "Retry unit of pipeline" in confirm.text
    assert "attempt 2" in confirm.text
    assert len(dash.backend.envs["staging"].jobs[pid]) == 3  # asking did nothing
    no_csrf = dash.client.post(f"{base}/jobs/{ids['unit']}/retry", data={})
    assert no_csrf.status_code == 403
    r = dash.client.post(
        f"{base}/jobs/{ids['unit']}/retry",
        data={"csrf_token": csrf(confirm.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == base
    jobs = dash.backend.envs["staging"].jobs[pid]
    assert [(j.name, j.status, j.attempt) for j in jobs][-1] == ("unit", "success", 2)
    audit = dash.db.audit.latest(1, None)[0]
    assert (audit.action, audit.actor, audit.outcome) == ("retry", "deployer-token", "ok")
    assert audit.detail == {"pipeline": pid, "job": ids["unit"]}
    shown = dash.client.get(base).text
    assert "retry started" in shown
    again = dash.client.post(
        f"{base}/jobs/{ids['unit']}/retry", data={"csrf_token": csrf(confirm.text)}
    )
    assert "retry refused" in again.text and "not the latest attempt" in again.text


def test_a_deployer_plays_a_manual_job(dash: Dash) -> None:
    pid, ids = _failed_pipeline(dash)
    dash.sign_in("deployer")
    base = f"/environments/staging/pipelines/{pid}"
    confirm = dash.client.get(f"{base}/jobs/{ids['ship']}/play")
    assert confirm.status_code == 200 and "Play ship" in confirm.text
    r = dash.client.post(f"{base}/jobs/{ids['ship']}/play", data={"csrf_token": csrf(confirm.text)})
    assert r.status_code == 200 and "play started" in r.text
    ship = next(j for j in dash.backend.envs["staging"].jobs[pid] if j.id == ids["ship"])
    assert ship.status == "success"
    wrong = dash.client.post(
        f"/environments/staging/pipelines/{pid}/jobs/999/play",
        data={"csrf_token": csrf(confirm.text)},
    )
    assert wrong.status_code == 404


def test_a_viewer_sees_no_retry_or_play_and_its_forged_posts_are_403(dash: Dash) -> None:
    pid, ids = _failed_pipeline(dash)
    dash.sign_in("viewer")
    base = f"/environments/staging/pipelines/{pid}"
    page = dash.client.get(base).text
    assert "/retry" not in page and "/play" not in page
    assert "/retry" not in dash.client.get(f"{base}/jobs/{ids['unit']}").text
    assert dash.client.get(f"{base}/jobs/{ids['unit']}/retry").status_code == 403
    for kind, job in (("retry", ids["unit"]), ("play", ids["ship"])):
        r = dash.client.post(f"{base}/jobs/{job}/{kind}", data={"csrf_token": csrf(page)})
        assert r.status_code == 403
        denied = dash.db.audit.latest(1, None)[0]
        assert (denied.action, denied.outcome) == (kind, "denied")
    assert len(dash.backend.envs["staging"].jobs[pid]) == 3
    assert dash.backend.envs["staging"].pipelines[pid].status == "failed"
