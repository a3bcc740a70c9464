"""The pipelines pages, the job page (log, ANSI, stream, JUnit, artifacts), cancelling a
pipeline and a commit's timeline, in process over the in-memory backend."""

from __future__ import annotations

import json
from pathlib import Path

from conveyor.app.ci_views import (
    GraphJob,
    GraphStage,
    GraphView,
    GraphWorkflow,
    JobArtifacts,
    TestFailureView,
)
from tests.unit.server.dashboard.conftest import Dash, csrf


def _pipeline(dash: Dash, status: str = "success") -> tuple[int, list[int]]:
    """A pipeline of staging at c2: build -> (lint, unit needs build) -> deploy needs unit."""
    b = dash.backend
    p = b.add_pipeline(
        "staging",
        "c2",
        status,
        {
            "build": ("success", "\x1b[32;1mbuilt\x1b[0m <img src=x onerror=alert(1)>\n"),
            "lint": ("success", "clean\n"),
            "unit": ("failed", "1 failed\n"),
            "deploy": ("running" if status == "running" else "success", "deploying\n"),
        },
    )
    e = b.envs["staging"]
    stages = {"build": "build", "lint": "test", "unit": "test", "deploy": "deploy"}
    e.jobs[p.id] = [j.model_copy(update={"stage": stages[j.name]}) for j in e.jobs[p.id]]
    if status == "running":
        e.pipelines[p.id] = p.model_copy(update={"status": "running"})
    e.graph = GraphView(
        ref="main",
        source="push",
        workflow=GraphWorkflow(runs=True, reason=""),
        stages=[
            GraphStage(name="build", jobs=[_graph_job("build", None)]),
            GraphStage(name="test", jobs=[_graph_job("lint", None), _graph_job("unit", ["build"])]),
            GraphStage(name="deploy", jobs=[_graph_job("deploy", ["unit"])]),
            GraphStage(name="notify", jobs=[_graph_job("notify", ["deploy"])]),
        ],
        decisions=[],
    )
    return p.id, [j.id for j in e.jobs[p.id]]


def _graph_job(name: str, needs: list[str] | None) -> GraphJob:
    return GraphJob(name=name, when="on_success", allow_failure=False, needs=needs)


def test_the_list_pages_through_every_pipeline(dash: Dash) -> None:
    dash.sign_in("viewer")
    for _ in range(60):
        dash.backend.add_pipeline("staging", "c2", "success", {})
    newest = max(dash.backend.envs["staging"].pipelines)
    first = dash.client.get("/environments/staging/pipelines").text
    assert f'href="/environments/staging/pipelines/{newest}"' in first
    assert first.count("<tr>") == 1 + 50  # the header row and a page
    assert 'href="/environments/staging/commits/c2"' in first  # the commit's timeline
    older = newest - 50 + 1
    assert f"/environments/staging/pipelines?before={older}" in first
    second = dash.client.get(f"/environments/staging/pipelines?before={older}").text
    assert second.count("<tr>") == 1 + 11  # 61 pipelines: 50 then 11
    assert "?before=" not in second  # the last page
    assert dash.client.get("/environments/nope/pipelines").status_code == 404


def test_the_pipeline_page_draws_stages_needs_and_links_each_job(dash: Dash) -> None:
    pid, jobs = _pipeline(dash)
    dash.sign_in("viewer")
    r = dash.client.get(f"/environments/staging/pipelines/{pid}")
    assert r.status_code == 200
    html = r.text
    for jid in jobs:
        assert f'href="/environments/staging/pipelines/{pid}/jobs/{jid}"' in html
    assert html.count("<path d=") == 2  # unit needs build, deploy needs unit
    assert "<title>unit needs build</title>" in html
    assert "<title>deploy needs unit</title>" in html
    stages = [html.index(f">{s}</text>") for s in ("build", "test", "deploy")]
    assert stages == sorted(stages)
    assert "Cancel pipeline" not in html  # finished, and a viewer
    assert ">notify</text>" not in html  # a finished pipeline shows what ran only
    fragment = dash.client.get(f"/fragments/environments/staging/pipelines/{pid}").text
    assert "<html" not in fragment and "<svg" in fragment
    assert dash.client.get("/environments/staging/pipelines/999").status_code == 404


def test_the_job_page_shows_the_log_escaped_and_coloured(dash: Dash) -> None:
    pid, jobs = _pipeline(dash)
    dash.sign_in("viewer")
    html = dash.client.get(f"/environments/staging/pipelines/{pid}/jobs/{jobs[0]}").text
    assert '<span class="ansi-bold ansi-fg-2">built</span>' in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Complete." in html and "data-log-stream" not in html  # finished: no stream
    assert dash.client.get(f"/environments/staging/pipelines/{pid}/jobs/1234").status_code == 404


def test_the_job_page_shows_junit_results_and_artifacts(dash: Dash, tmp_path: Path) -> None:
    pid, _jobs = _pipeline(dash)
    e = dash.backend.envs["staging"]
    unit = e.jobs[pid][2]
    e.jobs[pid][2] = unit.model_copy(
        update={
            "tests": {"total": 4, "passed": 2, "failed": 1, "errors": 0, "skipped": 1},
            "test_failures": [
                TestFailureView(
                    status="failed",
                    name="test_total",
                    classname="shop.cart",
                    suite="cart",
                    file="report.xml",
                    message="expected 3 <got 4>",
                )
            ],
            "artifacts": JobArtifacts(files=2, bytes=10, entries=["report.xml", "dist/"]),
        }
    )
    dash.sign_in("viewer")
    html = dash.client.get(f"/environments/staging/pipelines/{pid}/jobs/{unit.id}").text
    assert "Tests (JUnit)" in html and "shop.cart.test_total" in html
    assert "expected 3 &lt;got 4&gt;" in html
    assert "of 4" in html
    assert "dist/" in html and "report.xml" in html
    link = f"/environments/staging/pipelines/{pid}/jobs/{unit.id}/artifacts/report.xml"
    assert f'href="{link}"' in html
    assert dash.client.get(link).status_code == 404  # not stored
    blob = tmp_path / "blob"
    blob.write_bytes(b"<html><script>alert(1)</script>")
    e.artifact_files[(unit.id, "report.xml")] = blob
    r = dash.client.get(link)
    assert r.status_code == 200 and r.content == blob.read_bytes()
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in r.headers["content-security-policy"]
    dash.client.post("/signout", data={"csrf_token": csrf(html)})
    assert dash.client.get(link, follow_redirects=False).status_code == 303  # signed out


def test_a_running_jobs_log_streams_then_ends(dash: Dash) -> None:
    pid, jobs = _pipeline(dash, status="running")
    deploy = jobs[3]
    e = dash.backend.envs["staging"]
    e.logs[deploy] = e.logs[deploy].model_copy(update={"text": "one\n\x1b[31mtwo\x1b[0m\npart"})
    dash.sign_in("viewer")
    page = dash.client.get(f"/environments/staging/pipelines/{pid}/jobs/{deploy}").text
    stream = f"/environments/staging/pipelines/{pid}/jobs/{deploy}/log?offset="
    assert stream in page and "Streaming" in page
    assert "part" not in page  # a line still being written waits for its end
    shown = len("one\n\x1b[31mtwo\x1b[0m\n")
    assert f"{stream}{shown}" in page
    # the job finishes: the stream sends the rest and ends
    e.jobs[pid][3] = e.jobs[pid][3].model_copy(update={"status": "success"})
    e.logs[deploy] = e.logs[deploy].model_copy(
        update={"text": "one\n\x1b[31mtwo\x1b[0m\npart done\n"}
    )
    with dash.client.stream("GET", f"{stream}{shown}") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    events = [
        (block.split("\n")[0], json.loads(block.split("data: ", 1)[1]))
        for block in body.split("\n\n")
        if block.startswith("event:")
    ]
    assert [kind for kind, _ in events] == ["event: log", "event: end"]
    assert events[0][1]["html"] == "part done\n"
    assert events[1][1]["status"] == "success"


def test_a_deployer_cancels_a_running_pipeline_through_the_confirm_step(dash: Dash) -> None:
    pid, _jobs = _pipeline(dash, status="running")
    dash.sign_in("deployer")
    page = dash.client.get(f"/environments/staging/pipelines/{pid}").text
    assert f'href="/environments/staging/pipelines/{pid}/cancel"' in page
    # a job of the configuration not started yet: drawn, with its edge, without a link
    assert ">notify</text>" in page and "not started" in page
    assert "<title>notify needs deploy</title>" in page
    confirm = dash.client.get(f"/environments/staging/pipelines/{pid}/cancel")
    assert confirm.status_code == 200 and "Cancel pipeline" in confirm.text
    assert dash.backend.envs["staging"].pipelines[pid].status == "running"  # asking did nothing
    no_csrf = dash.client.post(f"/environments/staging/pipelines/{pid}/cancel", data={})
    assert no_csrf.status_code == 403
    r = dash.client.post(
        f"/environments/staging/pipelines/{pid}/cancel",
        data={"csrf_token": csrf(confirm.text)},
        follow_redirects=False,
    )
    assert (
        r.status_code == 303 and r.headers["location"] == f"/environments/staging/pipelines/{pid}"
    )
    assert dash.backend.envs["staging"].pipelines[pid].status == "canceled"
    audit = dash.db.audit.latest(1, None)[0]
    assert (audit.action, audit.actor, audit.outcome) == ("cancel", "deployer-token", "ok")
    shown = dash.client.get(r.headers["location"]).text
    assert "is being canceled" in shown
    again = dash.client.post(
        f"/environments/staging/pipelines/{pid}/cancel",
        data={"csrf_token": csrf(confirm.text)},
    )
    assert "cancel refused" in again.text  # no longer running


def test_a_viewer_sees_no_cancel_and_its_forged_post_is_403(dash: Dash) -> None:
    pid, _jobs = _pipeline(dash, status="running")
    dash.sign_in("viewer")
    page = dash.client.get(f"/environments/staging/pipelines/{pid}").text
    assert "/cancel" not in page
    assert dash.client.get(f"/environments/staging/pipelines/{pid}/cancel").status_code == 403
    r = dash.client.post(
        f"/environments/staging/pipelines/{pid}/cancel", data={"csrf_token": csrf(page)}
    )
    assert r.status_code == 403
    assert dash.backend.envs["staging"].pipelines[pid].status == "running"
    denied = dash.db.audit.latest(1, None)[0]
    assert (denied.action, denied.outcome) == ("cancel", "denied")


def test_a_commits_timeline(dash: Dash) -> None:
    dash.sign_in("viewer")
    overview = dash.client.get("/").text
    assert 'href="/environments/staging/commits/c2"' in overview
    r = dash.client.get("/environments/staging/commits/c2")
    assert r.status_code == 200
    html = r.text
    assert "Faster checkout" in html  # the commit's title
    assert "deploy to release 2" in html  # the rollout
    assert "<svg" in html and 'class="bar bar-succeeded' in html
    assert 'sse-connect="/live?after=' in html
    fragment = dash.client.get("/fragments/environments/staging/commits/c2").text
    assert "<html" not in fragment and "From commit to verdict" in fragment
    assert dash.client.get("/environments/staging/commits/nope").status_code == 404


def test_a_log_stream_stops_when_the_session_ends(dash: Dash) -> None:
    import anyio

    from conveyor.server.api import state_of
    from conveyor.server.dashboard.pages_pipelines import log_stream

    pid, jobs = _pipeline(dash, status="running")
    state = state_of(dash.client.app)  # type: ignore[arg-type]
    state.keepalive, state.events_poll = 0.0, 0.01

    async def read(signed_in: bool) -> list[str]:
        got = []
        async for message in log_stream(state, "staging", pid, jobs[3], 0, lambda: signed_in):
            got.append(message)
            if len(got) > 5:
                break
        return got

    ended = anyio.run(read, False)
    assert not any(m.startswith("event: end") for m in ended)
    assert len(ended) == 2  # retry, the log so far; then the stream stopped
    assert any(m.startswith(": keepalive") for m in anyio.run(read, True))
