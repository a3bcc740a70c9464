"""`conveyor env`, `diff`, `promote`, `rollback --env`, `suspend`, `resume`: the real CLI and
the real API client against the real API (over the in-memory backend), in process. Only the
transport differs from a live server: the client's requests go to the app directly."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.app.access import create_token, open_server_db
from conveyor.app.server_client import ActionVerdict, ServerClient, action_verdict, token_from
from conveyor.app.server_views import ActionResult
from conveyor.app.views import RolloutView
from conveyor.cli import environments
from conveyor.cli.main import app
from conveyor.errors import ConveyorError, ServerUnreachable
from conveyor.model.access import Role
from conveyor.model.events import Event, Subject
from conveyor.server.api import create_app
from conveyor.testing.net import free_port
from tests.unit.server.conftest import SECRET, World, make_backend

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

runner = CliRunner()
# The client sets a longer timeout for actions; Starlette's in-process client ignores timeouts.
pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The API over the server tests' in-memory backend (tests/unit/server/conftest.py), one
    token per role. The CLI's `connect` gives a client whose requests reach that app in
    process; the token is found as the CLI finds it (--token-file, else CONVEYOR_TOKEN)."""
    backend, pipeline, job = make_backend()
    db = open_server_db(tmp_path / "server")
    tokens: dict[Role, str] = {
        r: create_token(db, r, f"{r}-token").token for r in ("viewer", "deployer", "admin")
    }
    fastapi_app = create_app(backend, db, hook_secret=SECRET)

    def connect(server: str, token_file: Path | None) -> ServerClient:
        import os

        token = token_from(token_file, os.environ)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return ServerClient(TestClient(fastapi_app, headers=headers), server, token)

    monkeypatch.setattr(environments, "connect", connect)
    yield World(backend, db, TestClient(fastapi_app), tokens, pipeline, job)
    db.close()


def conveyor(w: World, *args: str, role: str | None = "viewer") -> tuple[int, str, str]:
    env = {"CONVEYOR_TOKEN": w.tokens[role] if role else None}  # type: ignore[index]
    r = runner.invoke(app, list(args), env=env)
    if isinstance(r.exception, ConveyorError):
        return 1, r.stdout, r.stderr + str(r.exception)
    return r.exit_code, r.stdout, r.stderr


# reading -----------------------------------------------------------------------------------------


def test_env_list_shows_each_environment_and_its_state(api: World) -> None:
    code, out, err = conveyor(api, "env", "list")
    assert code == 0, err
    rows = [line.strip("│ ").split("│") for line in out.splitlines() if line.startswith("│")]
    lines = {r[0].strip(): "│".join(r) for r in rows}
    assert "branch main" in lines["staging"] and "serving" in lines["staging"]
    assert "promoted from staging" in lines["production"] and "yes" in lines["production"]
    code, out, _ = conveyor(api, "env", "list", "--json")
    doc = json.loads(out)
    assert [(e["name"], e["state"], e["release"]) for e in doc] == [
        ("staging", "serving", 2),
        ("qa", "empty", None),
        ("production", "empty", None),
    ]


def test_env_status_is_the_apis_detail(api: World) -> None:
    code, out, _ = conveyor(api, "env", "status", "staging", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["environment"]["commit"] == "c2" and doc["desired_commit"] == "c2"
    assert doc["status"]["services"][0]["image"] == "shop-web:2"
    api.backend.envs["staging"].desired_commit = "c3"  # git moved; c2 still serves
    code, out, _ = conveyor(api, "env", "status", "staging")
    assert code == 0
    assert "git says: c3 (not serving yet)" in out
    assert "release 2" in out
    assert "pinned" not in out


def test_diff_says_in_sync_then_what_differs(api: World) -> None:
    code, out, _ = conveyor(api, "diff", "--env", "staging")
    assert code == 0 and "staging is in sync" in out
    api.backend.envs["staging"].desired_commit = "c3"
    code, out, _ = conveyor(api, "diff", "--env", "staging")
    assert code == 0
    assert "staging differs: git says c3, running c2" in out
    assert "web" in out and "commit c2 → c3" in out
    doc = json.loads(conveyor(api, "diff", "--env", "staging", "--json")[1])
    assert doc["in_sync"] is False and doc["services"][0]["service"] == "web"


def test_an_unknown_environment_is_the_servers_404(api: World) -> None:
    code, _, err = conveyor(api, "env", "status", "nope")
    assert code == 1
    assert "no environment 'nope'" in err


# acting ------------------------------------------------------------------------------------------


def test_promote_moves_the_release_and_names_it(api: World) -> None:
    code, _, err = conveyor(api, "promote", "qa", "--from", "staging", role="deployer")
    assert code == 0, err
    assert "promote" in err and "release 1" in err
    assert api.backend.envs["qa"].current == 1
    assert api.backend.envs["qa"].rollouts[-1].actor == "deployer-token"


def test_promote_wait_reports_the_rollouts_end(api: World) -> None:
    code, _, err = conveyor(api, "promote", "qa", "--from", "staging", "--wait", role="deployer")
    assert code == 0, err
    assert "done: qa: rollout 1 to release 1 succeeded" in err


def test_a_refused_promotion_prints_the_servers_reason(api: World) -> None:
    code, _, err = conveyor(api, "promote", "production", "--from", "staging", role="deployer")
    assert code == 1
    assert "production needs an approval of staging's release 2 first" in err
    assert api.backend.envs["production"].current is None


def test_a_viewer_token_is_told_which_role_acting_needs(api: World) -> None:
    code, _, err = conveyor(api, "suspend", "staging", role="viewer")
    assert code == 1
    assert "403" in err and "needs the deployer role" in err
    assert api.backend.envs["staging"].suspended is False


def test_no_token_and_a_wrong_token_are_told_apart(
    api: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_TOKEN", raising=False)
    code, _, err = conveyor(api, "env", "list", role=None)
    assert code == 1
    assert "wants an API token with the viewer role" in err and "CONVEYOR_TOKEN" in err
    bad = tmp_path / "token"
    bad.write_text("cvr_not-a-token\n")
    code, _, err = conveyor(api, "env", "list", "--token-file", str(bad), role=None)
    assert code == 1 and "refused the API token (401" in err


def test_the_token_file_wins_over_the_variable(api: World, tmp_path: Path) -> None:
    good = tmp_path / "token"
    good.write_text(api.tokens["deployer"] + "\n")
    # CONVEYOR_TOKEN holds a viewer token: the file's deployer token is the one sent
    code, _, err = conveyor(api, "suspend", "qa", "--token-file", str(good), role="viewer")
    assert code == 0, err
    assert api.backend.envs["qa"].suspended is True


def test_suspend_and_resume(api: World) -> None:
    code, _, err = conveyor(api, "suspend", "staging", role="deployer")
    assert code == 0 and "suspend" in err
    assert api.backend.envs["staging"].suspended is True
    code, _, _ = conveyor(api, "promote", "staging", "--from", "qa", role="deployer")
    assert code == 1  # refused: suspended
    code, _, _ = conveyor(api, "resume", "staging", role="deployer")
    assert code == 0 and api.backend.envs["staging"].suspended is False


def test_rollback_env_goes_through_the_api(api: World) -> None:
    code, _, err = conveyor(api, "rollback", "--env", "staging", "--to", "1", role="deployer")
    assert code == 0, err
    assert "rolled back to 1" in err
    assert api.backend.envs["staging"].current == 1
    code, _, err = conveyor(api, "rollback", "--env", "staging", "web", role="deployer")
    assert code == 2 and "whole environment" in err


def test_rollback_to_without_env_is_refused_before_anything_runs(tmp_path: Path) -> None:
    r = runner.invoke(app, ["-f", str(tmp_path / "none.yaml"), "rollback", "--to", "3"])
    assert r.exit_code == 2 and "--to needs --env" in r.stderr


# no server, bad answers --------------------------------------------------------------------------


def test_no_server_running_is_said_with_the_address() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnreachable) as e, ServerClient.connect(url, "t") as client:
        client.environments()
    assert f"no Conveyor server answers at {url}" in str(e.value)
    assert "CONVEYOR_SERVER" in str(e.value)


def test_the_cli_reaches_the_address_it_is_given() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = runner.invoke(app, ["env", "list"], env={"CONVEYOR_SERVER": url, "CONVEYOR_TOKEN": "x"})
    assert isinstance(r.exception, ServerUnreachable) and url in str(r.exception)
    r = runner.invoke(app, ["env", "list", "--server", "127.0.0.1:7780"])
    assert isinstance(r.exception, ConveyorError) and "is a URL" in str(r.exception)


def test_token_from_reads_the_file_else_the_variable(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text("cvr_abc\n")
    assert token_from(f, {"CONVEYOR_TOKEN": "env"}) == "cvr_abc"
    assert token_from(None, {"CONVEYOR_TOKEN": " env "}) == "env"
    assert token_from(None, {}) is None
    f.write_text("\n")
    with pytest.raises(ConveyorError, match="empty"):
        token_from(f, {})
    with pytest.raises(ConveyorError, match="cannot read"):
        token_from(tmp_path / "missing", {})


def test_an_answer_of_another_shape_is_said(api: World) -> None:
    """What a server of another version (or another program) answers is not taken as ours."""
    client = environments.connect("http://testserver", None)
    client.http.headers["Authorization"] = f"Bearer {api.tokens['viewer']}"
    with pytest.raises(ConveyorError, match="did not answer as a Conveyor server"):
        client._get("/environments", ActionResult)


# waiting (pure) ----------------------------------------------------------------------------------


def _rollout(rid: int, status: str, error: str | None = None) -> RolloutView:
    return RolloutView(
        id=rid,
        kind="deploy",
        from_release=1,
        to_release=2,
        status=status,
        started_at=0.0,
        finished_at=None,
        duration=None,
        actor="t",
        reason="",
        error=error,
    )


def _event(kind: str, env: str, release: int | None = None) -> Event:
    return Event(
        id=1,
        kind=kind,  # type: ignore[arg-type]
        message=f"{kind} in {env}",
        subject=Subject(project="app", environment=env, release=release),
    )


def test_a_named_rollout_decides_the_verdict() -> None:
    result = ActionResult(action="promote", environment="qa", message="", release=2, rollout=7)
    assert action_verdict(result, [_rollout(7, "running")], []) is None
    assert action_verdict(result, [_rollout(6, "succeeded")], []) is None
    assert action_verdict(result, [_rollout(7, "succeeded")], []) == ActionVerdict(
        ok=True, status="succeeded", message="qa: rollout 7 to release 2 succeeded"
    )
    failed = action_verdict(result, [_rollout(7, "rolled_back", "probe failed")], [])
    assert failed is not None and not failed.ok and "probe failed" in failed.message


def test_without_a_rollout_the_environments_events_decide() -> None:
    result = ActionResult(action="promote", environment="qa", message="", release=2)
    assert action_verdict(result, [], [_event("promotion.succeeded", "staging")]) is None
    assert action_verdict(result, [], [_event("rollout.succeeded", "qa", release=1)]) is None
    ok = action_verdict(result, [], [_event("rollout.succeeded", "qa", release=2)])
    assert ok is not None and ok.ok
    failed = action_verdict(result, [], [_event("promotion.failed", "qa")])
    assert failed is not None and not failed.ok and failed.status == "promotion.failed"


def test_wait_gives_up_at_its_timeout(api: World) -> None:
    """A promotion whose outcome never comes: the verdict is a timeout, after polling."""
    client = environments.connect("http://testserver", None)
    client.http.headers["Authorization"] = f"Bearer {api.tokens['viewer']}"
    result = ActionResult(action="promote", environment="qa", message="", release=9)
    now = [0.0]
    polls: list[float] = []

    def sleep(s: float) -> None:
        polls.append(s)
        now[0] += s

    verdict = client.wait(result, 10_000, 3.0, poll=1.0, clock=lambda: now[0], sleep=sleep)
    assert verdict.status == "timeout" and not verdict.ok
    assert polls == [1.0, 1.0, 1.0]
