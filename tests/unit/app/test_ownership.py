"""Who manages a project, on disk (`app.ownership`, `store.owner_file`): the record a server
writes in a project's state directory and the index that finds it by name; how a command
finds it (`-p NAME` from anywhere, the state directory, the server's work tree); whether the
server it names still runs; a restart claiming its projects again. Real files, real PIDs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conveyor.app.ownership import (
    ServerIdentity,
    claim_project,
    open_owned,
    owner_running,
    reclaim,
    resolve,
)
from conveyor.app.project import Project
from conveyor.errors import NoComposeFile, StoreError
from conveyor.host.process import process_started
from conveyor.model.environments import EnvironmentSpec
from conveyor.store.owner_file import index_dir, indexed, read_owner, write_owner

COMPOSE = "services:\n  web:\n    image: shop-web:1\n"


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """The index under the test's own state home, nothing of the machine's."""
    return {"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}


def server(
    data: Path, pid: int | None = None, url: str = "http://127.0.0.1:7780"
) -> ServerIdentity:
    return ServerIdentity.this_process(url, data, "/srv/git/shop.git", pid or os.getpid())


def work_tree(data: Path, env: str = "staging") -> Path:
    """A server's work tree (`DATA/environments/ENV/shop`) holding the app's compose file."""
    work = data / "environments" / env / "shop"
    work.mkdir(parents=True)
    (work / "compose.yaml").write_text(COMPOSE)
    return work


def server_project(work: Path, env: str, environ: dict[str, str]) -> Project:
    """The project as the controller opens it: in the work tree, named `shop-ENV`."""
    return Project.open(None, f"shop-{env}", environ, cwd=work)


def claim(data: Path, environ: dict[str, str], env: str = "staging", **kw: object) -> Path:
    work = work_tree(data, env)
    spec = EnvironmentSpec(name=env, branch="main")
    claim_project(server(data, **kw), spec, server_project(work, env, environ), environ)  # type: ignore[arg-type]
    return work


def test_the_server_records_the_project_in_its_state_directory_and_the_index(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    data = tmp_path / "data"
    work = claim(data, environ)
    state = work / ".conveyor" / "shop-staging"
    owner = read_owner(state)
    assert owner is not None
    assert (owner.project, owner.environment, owner.branch) == ("shop-staging", "staging", "main")
    assert owner.pid == os.getpid() and owner.pid_start == process_started(os.getpid())
    assert owner.compose_files == (str(work / "compose.yaml"),)
    assert owner.state_dir == str(state) and owner.data_dir == str(data)
    assert oct((state / "server.json").stat().st_mode & 0o777) == "0o600"
    assert (index_dir(environ) / "shop-staging").read_text().strip() == str(state)
    assert indexed("shop-staging", environ) == owner
    assert write_owner(owner) is False  # the same claim again: nothing written


def test_minus_p_finds_the_project_from_a_directory_without_compose_file(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    data = tmp_path / "data"
    work = claim(data, environ)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = resolve([], "shop-staging", environ, elsewhere)
    assert found.owner is not None and found.owner.environment == "staging"
    assert found.running is True  # this process is the "server"
    assert found.project is None and isinstance(found.missing, NoComposeFile)
    project = open_owned(found.owner, found, environ, elsewhere)
    assert project.paths().project == "shop-staging"
    assert project.paths().state_dir == work / ".conveyor" / "shop-staging"
    assert project.compose_file == work / "compose.yaml"
    with pytest.raises(NoComposeFile):
        resolve([], "shop-production", environ, elsewhere).require()


def test_the_work_trees_compose_file_is_the_servers_project_whatever_compose_names_it(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    work = claim(tmp_path / "data", environ)
    # Compose's default name here is the directory's, `shop`: still the server's project.
    found = resolve([], None, environ, work)
    assert found.project is not None and found.project.paths().project == "shop"
    assert found.owner is not None and found.owner.project == "shop-staging"
    project = open_owned(found.owner, found, environ, work)
    assert project.paths().project == "shop-staging"
    assert project.paths().state_dir == work / ".conveyor" / "shop-staging"
    # Named explicitly, in the work tree: the record in the state directory.
    named = resolve([Path("compose.yaml")], "shop-staging", {"HOME": str(tmp_path)}, work)
    assert named.owner == found.owner


def test_another_project_is_nobodys(tmp_path: Path, environ: dict[str, str]) -> None:
    claim(tmp_path / "data", environ)
    mine = tmp_path / "mine" / "shop"
    mine.mkdir(parents=True)
    (mine / "compose.yaml").write_text(COMPOSE)
    found = resolve([], None, environ, mine)  # project `shop`, its own state
    assert found.owner is None and found.running is False
    assert found.require().paths().project == "shop"


def test_an_index_entry_whose_record_is_gone_is_ignored(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    work = claim(tmp_path / "data", environ)
    (work / ".conveyor" / "shop-staging" / "server.json").unlink()
    assert indexed("shop-staging", environ) is None
    assert resolve([], "shop-staging", environ, tmp_path).owner is None


def test_a_record_that_is_not_one_is_an_error_naming_the_file(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    work = claim(tmp_path / "data", environ)
    record = work / ".conveyor" / "shop-staging" / "server.json"
    record.write_text('{"project": 3}')
    with pytest.raises(StoreError, match=f"{record}: not a Conveyor server record"):
        resolve([], None, environ, work)


def test_a_server_that_ended_is_not_running_nor_is_a_process_given_its_pid(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    done = subprocess.run(["true"], check=True)
    assert done.returncode == 0
    child = subprocess.Popen(["true"])
    child.wait()  # ended and reaped: its PID names no process
    claim(tmp_path / "data", environ, pid=child.pid)
    owner = indexed("shop-staging", environ)
    assert owner is not None and owner.pid == child.pid
    assert owner_running(owner) is False
    alive = owner.model_copy(update={"pid": os.getpid(), "pid_start": None})
    assert owner_running(alive) is True
    started = process_started(os.getpid())
    assert started is not None
    # This PID, but not the process that started then: the PID was given again.
    reused = alive.model_copy(update={"pid_start": started + 1})
    assert owner_running(reused) is False


def test_a_restart_claims_the_data_directorys_projects_and_no_others(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    data, other = tmp_path / "data", tmp_path / "other"
    claim(data, environ, "staging", pid=1, url="http://127.0.0.1:1")
    claim(other, environ, "qa", pid=1, url="http://127.0.0.1:2")
    now = server(data, url="http://127.0.0.1:7781")
    claimed = reclaim(now, environ)
    assert [o.project for o in claimed] == ["shop-staging"]
    staging = indexed("shop-staging", environ)
    assert staging is not None
    assert (staging.pid, staging.server_url) == (os.getpid(), "http://127.0.0.1:7781")
    qa = indexed("shop-qa", environ)
    assert qa is not None and (qa.pid, qa.server_url) == (1, "http://127.0.0.1:2")
