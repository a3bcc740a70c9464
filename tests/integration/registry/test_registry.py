"""The registry component against the real `docker-registry` binary and dockerd.

Each test gets its own port and state directory; images it tags are removed at teardown and the
registry process is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests

from conveyor.runtime.registry import Registry, RegistryError
from conveyor.testing.net import free_port

BASE_IMAGE = "python:3.11-slim-bookworm"

pytestmark = pytest.mark.skipif(
    shutil.which("docker-registry") is None,
    reason="docker-registry not installed (apt-get install docker-registry)",
)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / "registry", free_port())
    yield reg
    reg.stop()


def plain_get(url: str, auth: tuple[str, str] | None = None) -> requests.Response:
    session = requests.Session()
    session.trust_env = False  # loopback only, never through a proxy
    try:
        return session.get(url, auth=auth, timeout=5)
    finally:
        session.close()


def test_ensure_starts_once_and_stop_ends_it(registry: Registry) -> None:
    registry.ensure()
    pid = registry.pid()
    assert registry.running() and registry.ready()
    registry.ensure()  # already answering: nothing new is started
    assert registry.pid() == pid
    for name in ("credentials.json", "htpasswd", "config.yml"):
        mode = stat.S_IMODE((registry.state_dir / name).stat().st_mode)
        assert mode == 0o600, name
    assert registry.stop()
    assert not registry.running()
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert not registry.stop()  # nothing left to stop


def test_credentials_persist_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "registry"
    first = Registry(state, free_port())
    try:
        first.ensure()
        creds = first.credentials()
    finally:
        first.stop()
    second = Registry(state, first.port)
    try:
        second.ensure()
        assert second.credentials() == creds
        assert plain_get(f"http://{second.url}/v2/", auth=creds).status_code == 200
    finally:
        second.stop()


def test_a_changed_port_restarts_the_registry(tmp_path: Path) -> None:
    state = tmp_path / "registry"
    first = Registry(state, free_port())
    moved = Registry(state, free_port())
    try:
        first.ensure()
        old_pid = first.pid()
        moved.ensure()
        assert moved.ready()
        assert moved.pid() != old_pid
        assert not first.ready()  # the old port is closed
    finally:
        moved.stop()
        first.stop()


def test_unreadable_credentials_are_not_silently_replaced(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r", free_port())
    reg.state_dir.mkdir()
    reg.credentials_path.write_text("{broken")
    with pytest.raises(RegistryError, match="unreadable"):
        reg.ensure()
    assert reg.credentials_path.read_text() == "{broken"


def test_wrong_password_gets_401(registry: Registry) -> None:
    registry.ensure()
    user, _ = registry.credentials()
    assert plain_get(f"http://{registry.url}/v2/").status_code == 401
    denied = plain_get(f"http://{registry.url}/v2/", auth=(user, "wrong-password"))
    assert denied.status_code == 401
    assert 'realm="conveyor"' in denied.headers.get("WWW-Authenticate", "")


def test_a_foreign_service_on_the_port_is_reported(registry: Registry, tmp_path: Path) -> None:
    other = Registry(tmp_path / "someone-else", registry.port)
    other.ensure()
    try:
        with pytest.raises(RegistryError, match="refuses Conveyor's credentials"):
            registry.ensure()
    finally:
        other.stop()


def push_errors(lines: Any) -> list[str]:
    return [str(line["error"]) for line in lines if isinstance(line, dict) and "error" in line]


@pytest.mark.usefixtures("dockerd")
def test_push_catalog_pull_with_docker(registry: Registry) -> None:
    client = docker.from_env()
    if not client.images.list(name=BASE_IMAGE):
        pytest.skip(f"{BASE_IMAGE} missing (conveyor bootstrap builds it)")
    registry.ensure()
    user, password = registry.credentials()
    repository = f"{registry.url}/test/base"
    reference = f"{repository}:ci"
    auth = {"username": user, "password": password}
    try:
        with pytest.raises(docker.errors.APIError):
            client.login(username=user, password="wrong", registry=registry.url, reauth=True)
        client.login(username=user, password=password, registry=registry.url, reauth=True)
        assert client.images.get(BASE_IMAGE).tag(repository, tag="ci")
        pushed = list(
            client.images.push(repository, tag="ci", stream=True, decode=True, auth_config=auth)
        )
        assert push_errors(pushed) == []
        assert "test/base" in registry.catalog()
        pushed_id = client.images.get(reference).id
        client.images.remove(reference)
        pulled = client.images.pull(repository, tag="ci", auth_config=auth)
        assert pulled.id == pushed_id
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(reference)
        client.close()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r", free_port(), binary="no-such-registry-binary")
    with pytest.raises(RegistryError, match="not installed"):
        reg.ensure()
    assert not os.path.exists(reg.pid_path)
