"""One writer at the CLI: on a project a `conveyor server` manages, the local commands that
would change it are refused (exit 2) naming the server and its way, `rollback` and `status`
go through the API. The real CLI against the real API (in process, over the server tests'
in-memory backend); the project's ownership record written as the server writes it. Nothing
here reaches Docker: a refused command must not, and the routed ones do not. `--force` is
tested against the real server (tests/integration/gitops/test_server_one_writer.py)."""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.app.access import create_token, open_server_db
from conveyor.app.ownership import ServerIdentity, claim_project
from conveyor.app.project import Project
from conveyor.app.server_client import ServerClient, token_from
from conveyor.cli import environments
from conveyor.cli.main import app
from conveyor.errors import NoComposeFile
from conveyor.model.access import Role
from conveyor.model.environments import EnvironmentSpec
from conveyor.server.api import create_app
from conveyor.testing.server import InMemoryBackend
from tests.unit.server.conftest import SECRET, make_backend

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")
URL = "http://127.0.0.1:7780"


@dataclass
class Managed:
    backend: InMemoryBackend
    tokens: dict[Role, str]
    data: Path
    work: Path  # the server's work tree of staging
    state: Path  # the project's state directory
    elsewhere: Path  # a directory with no compose file
    urls: list[str]  # the server addresses the CLI connected to


@pytest.fixture
def managed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Managed]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    for name in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "CONVEYOR_STATE_HOME", "CONVEYOR_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    backend, _, _ = make_backend()
    db = open_server_db(tmp_path / "server")
    tokens: dict[Role, str] = {
        r: create_token(db, r, f"{r}-token").token for r in ("viewer", "deployer")
    }
    api = create_app(backend, db, hook_secret=SECRET)
    urls: list[str] = []

    def connect(server: str, token_file: Path | None) -> ServerClient:
        urls.append(server)
        token = token_from(token_file, os.environ)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return ServerClient(TestClient(api, headers=headers), server, token)

    monkeypatch.setattr(environments, "connect", connect)
    data = tmp_path / "data"
    work = data / "environments" / "staging" / "shop"
    work.mkdir(parents=True)
    (work / "compose.yaml").write_text("services:\n  web:\n    image: shop-web:2\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    yield Managed(backend, tokens, data, work, work / ".conveyor" / "shop-staging", elsewhere, urls)
    db.close()


def claim(m: Managed, pid: int) -> None:
    """What the server writes when it opens staging's project (pid: the server's process)."""
    project = Project.open(None, "shop-staging", os.environ, cwd=m.work)
    me = ServerIdentity.this_process(URL, m.data, "/srv/git/shop.git", pid)
    claim_project(me, EnvironmentSpec(name="staging", branch="main"), project, os.environ)


def ended_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def conveyor(
    cwd: Path, *args: str, token: str | None = None, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    r = runner.invoke(app, list(args), env={"CONVEYOR_TOKEN": token})
    return r.exit_code, r.stdout, r.stderr


WRITES = [
    (["deploy"], "push to main instead (the server deploys every commit on it)"),
    (["up"], "push to main instead"),
    (["down"], "use `conveyor suspend staging`"),
    (["agent"], "no agent is needed: the server corrects its drift"),
    (["rollback", "web"], "use `conveyor rollback --env staging` (it rolls the whole"),
]


@pytest.mark.parametrize(("args", "advice"), WRITES)
def test_a_write_by_name_from_anywhere_is_refused_and_changes_nothing(
    managed: Managed, monkeypatch: pytest.MonkeyPatch, args: list[str], advice: str
) -> None:
    m = managed
    claim(m, os.getpid())  # "the server" runs: this process
    code, _, err = conveyor(m.elsewhere, "-p", "shop-staging", *args, monkeypatch=monkeypatch)
    assert code == 2, err
    text = " ".join(err.split())
    assert (
        "refused: project shop-staging is managed by the Conveyor server at "
        f"{URL} (environment staging): {advice}"
    ) in text
    assert "--force acts on the project anyway" in text
    assert sorted(p.name for p in m.state.iterdir()) == ["server.json"]  # no state, no lock
    assert m.backend.envs["staging"].current == 2 and m.urls == []


def test_a_write_in_the_servers_work_tree_is_refused(
    managed: Managed, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = managed
    claim(m, os.getpid())
    code, _, err = conveyor(m.work, "deploy", monkeypatch=monkeypatch)
    assert code == 2 and "project shop-staging is managed" in err
    assert not (m.work / ".conveyor" / "shop").exists()  # Compose's default name: untouched


def test_rollback_goes_through_the_api_as_rollback_env(
    managed: Managed, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = managed
    claim(m, os.getpid())
    code, _, err = conveyor(m.work, "rollback", token=m.tokens["deployer"], monkeypatch=monkeypatch)
    assert code == 0, err
    text = " ".join(err.split())
    assert "rolling it back through the server, as `conveyor rollback --env staging` does" in text
    assert "rolled back to 1" in text
    assert m.backend.envs["staging"].current == 1
    assert m.urls == [URL]  # the record's server, whatever --server says
    # A viewer token is the server's 403, said as for `rollback --env`.
    code, _, err = conveyor(
        m.elsewhere, "-p", "shop-staging", "rollback", token=m.tokens["viewer"],
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 1 and m.backend.envs["staging"].current == 1


def test_status_is_the_servers_view(managed: Managed, monkeypatch: pytest.MonkeyPatch) -> None:
    m = managed
    claim(m, os.getpid())
    viewer = m.tokens["viewer"]
    code, out, err = conveyor(
        m.elsewhere, "-p", "shop-staging", "status", token=viewer, monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert "staging (branch main): serving, release 2" in out
    assert "showing its view (`conveyor env status staging`)" in " ".join(err.split())
    code, out, _ = conveyor(m.work, "status", "--json", token=viewer, monkeypatch=monkeypatch)
    assert code == 0
    doc = json.loads(out)  # the shape of `conveyor status --json`
    assert doc["release"] == 2 and doc["services"][0]["image"] == "shop-web:2"


def test_a_stopped_servers_project_is_still_refused_and_force_offered(
    managed: Managed, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = managed
    pid = ended_pid()
    claim(m, pid)
    for args in (["deploy"], ["rollback"], ["down"]):
        code, _, err = conveyor(
            m.elsewhere, "-p", "shop-staging", *args, token=m.tokens["deployer"],
            monkeypatch=monkeypatch,
        )  # fmt: skip
        text = " ".join(err.split())
        assert code == 2, err
        assert f"which is not running (its process {pid} is gone)" in text
        assert "pass --force to take the project over from the CLI" in text
    assert m.backend.envs["staging"].current == 2 and m.urls == []


def test_a_project_nobody_manages_goes_on_to_its_own_checks(
    managed: Managed, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = managed
    claim(m, os.getpid())
    monkeypatch.chdir(m.elsewhere)
    r = runner.invoke(app, ["-p", "shop-review", "deploy"])
    assert isinstance(r.exception, NoComposeFile)  # not refused: no compose file here
    assert "managed" not in r.stderr
