"""GitLab commit statuses through python-gitlab, against the fake GitLab API on loopback
(conveyor.testing.fake_gitlab follows GitLab's documented REST API; no real GitLab runs here)."""

from __future__ import annotations

import pytest

from conveyor.errors import NotifyError
from conveyor.gitops.notify.gitlab_status import GitLabStatusNotifier, status_name
from conveyor.model.notifications import Notification, State, Topic
from conveyor.testing.fake_gitlab import FakeGitLab
from conveyor.testing.net import free_port
from tests.integration.notify.conftest import SHA, TOKEN


def note(
    topic: Topic = "rollout.succeeded",
    state: State = "success",
    environment: str | None = "production",
    commit: str | None = SHA,
    title: str = "production: release 4 is live",
) -> Notification:
    return Notification(
        topic=topic, title=title, text="t", level="info", state=state, project="shop",
        environment=environment, commit=commit, release=4,
        url="https://conveyor.example.com/rollouts/4",
    )  # fmt: skip


def test_a_deploy_sets_the_commit_status_by_project_path(gitlab_api: FakeGitLab) -> None:
    gl = GitLabStatusNotifier(gitlab_api.url, "group/app", TOKEN)
    gl.send(note("rollout.started", "running", title="production: deploying release 4"))
    gl.send(note())
    (status,) = gitlab_api.of(SHA)  # one status, moved from running to success
    assert status["name"] == "conveyor/production"
    assert status["status"] == "success"
    assert status["target_url"] == "https://conveyor.example.com/rollouts/4"
    assert status["description"] == "production: release 4 is live"
    posts = [r for r in gitlab_api.requests if r.method == "POST"]
    assert [r.path for r in posts] == [f"/api/v4/projects/group%2Fapp/statuses/{SHA}"] * 2
    assert all(r.headers["private-token"] == TOKEN for r in posts)
    assert [r.method for r in gitlab_api.requests] == ["POST", "POST"]  # nothing else asked


def test_pipeline_and_deploy_statuses_have_their_own_names(gitlab_api: FakeGitLab) -> None:
    gl = GitLabStatusNotifier(gitlab_api.url, "42", TOKEN)
    gl.send(note("pipeline.failed", "failed", environment="staging"))
    gl.send(note("rollout.succeeded", "success", environment="staging"))
    gl.send(note("pipeline.succeeded", "success", environment=None))
    names = {s["name"]: s["status"] for s in gitlab_api.of(SHA)}
    assert names == {
        "conveyor/staging/pipeline": "failed",
        "conveyor/staging": "success",
        "conveyor/pipeline": "success",
    }
    assert status_name(note(environment=None)) == "conveyor"


def test_the_same_state_twice_is_not_an_error(gitlab_api: FakeGitLab) -> None:
    gl = GitLabStatusNotifier(gitlab_api.url, "42", TOKEN)
    gl.send(note("rollout.started", "running"))
    gl.send(note("rollout.started", "running"))  # GitLab answers 400 "Cannot transition"
    assert [s["status"] for s in gitlab_api.of(SHA)] == ["running"]
    assert sum(r.method == "POST" for r in gitlab_api.requests) == 2


def test_a_long_title_is_clipped_to_what_gitlab_keeps(gitlab_api: FakeGitLab) -> None:
    GitLabStatusNotifier(gitlab_api.url, "42", TOKEN).send(note(title="x" * 400))
    (status,) = gitlab_api.of(SHA)
    assert len(status["description"]) == 255 and status["description"].endswith("…")


def test_nothing_is_sent_for_a_deploy_of_files_outside_git(gitlab_api: FakeGitLab) -> None:
    GitLabStatusNotifier(gitlab_api.url, "42", TOKEN).send(note(commit=None))
    assert gitlab_api.requests == []


def test_a_wrong_token_is_not_retried(gitlab_api: FakeGitLab) -> None:
    with pytest.raises(NotifyError, match="401") as caught:
        GitLabStatusNotifier(gitlab_api.url, "42", "wrong").send(note())
    assert not caught.value.retry
    assert "the token is wrong, expired or revoked" in str(caught.value)
    assert gitlab_api.of(SHA) == []


def test_an_unknown_project_or_commit_is_not_retried(gitlab_api: FakeGitLab) -> None:
    with pytest.raises(NotifyError, match="404 Project Not Found") as caught:
        GitLabStatusNotifier(gitlab_api.url, "group/other", TOKEN).send(note())
    assert not caught.value.retry
    with pytest.raises(NotifyError, match="404 Commit Not Found"):
        GitLabStatusNotifier(gitlab_api.url, "42", TOKEN).send(note(commit="f" * 40))


def test_an_outage_is_worth_a_retry(gitlab_api: FakeGitLab) -> None:
    gitlab_api.fail_next.append(502)
    gl = GitLabStatusNotifier(gitlab_api.url, "42", TOKEN)
    with pytest.raises(NotifyError, match="502") as caught:
        gl.send(note())
    assert caught.value.retry
    gl.send(note())  # and the next try goes through
    assert [s["status"] for s in gitlab_api.of(SHA)] == ["success"]


def test_no_gitlab_listening_is_worth_a_retry() -> None:
    gl = GitLabStatusNotifier(f"http://127.0.0.1:{free_port()}", "42", TOKEN, timeout=5)
    with pytest.raises(NotifyError, match="cannot reach GitLab") as caught:
        gl.send(note())
    assert caught.value.retry


def test_check_reads_the_project(gitlab_api: FakeGitLab) -> None:
    GitLabStatusNotifier(gitlab_api.url, "group/app", TOKEN).check()
    assert [(r.method, r.path) for r in gitlab_api.requests] == [
        ("GET", "/api/v4/projects/group%2Fapp")
    ]
    with pytest.raises(NotifyError, match="401"):
        GitLabStatusNotifier(gitlab_api.url, "group/app", "wrong").check()
    with pytest.raises(NotifyError, match="404"):
        GitLabStatusNotifier(gitlab_api.url, "nobody/none", TOKEN).check()
