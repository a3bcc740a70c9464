"""app.fleet_file through Project.fleet: conveyor.yaml's fleet is read (and its Ansible
inventory listed by `ansible-inventory`) once per version of the files; a change to either
file reads it again. And Project.warnings: placement is warned as ignored only when the
project runs on one host."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conveyor.app import provision
from conveyor.app.project import Project

COMPOSE = (
    "services:\n"
    "  web:\n"
    "    image: web\n"
    "    deploy:\n"
    "      mode: global\n"
    "      placement: {constraints: [node.labels.zone==a]}\n"
)


def _project(tmp_path: Path) -> Project:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    return Project.open(None, None, {}, tmp_path)


def _later(path: Path, text: str) -> None:
    """Write `text` with a newer mtime than the file had (as an editor saving it would)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_the_inventory_is_listed_once_per_version_of_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[Path] = []
    real = provision.list_inventory

    def counting(path: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        listed.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(provision, "list_inventory", counting)
    (tmp_path / "hosts.ini").write_text("[app]\nh1 ansible_host=10.0.0.5\n")
    (tmp_path / "conveyor.yaml").write_text("inventory: hosts.ini\n")
    project = _project(tmp_path)
    assert [h.name for h in project.fleet().hosts] == ["h1"]
    assert [h.name for h in project.fleet().hosts] == ["h1"]
    assert [h.name for h in _project(tmp_path).fleet().hosts] == ["h1"]  # another Project
    assert len(listed) == 1
    _later(tmp_path / "hosts.ini", "[app]\nh1 ansible_host=10.0.0.5\nh2 ansible_host=10.0.0.6\n")
    assert [h.name for h in project.fleet().hosts] == ["h1", "h2"]
    assert len(listed) == 2
    _later(tmp_path / "conveyor.yaml", "hosts:\n  h3: {address: 10.0.0.7}\n")
    assert [h.name for h in project.fleet().hosts] == ["h3"]
    assert len(listed) == 2  # inline hosts: nothing to list
    _later(tmp_path / "conveyor.yaml", "inventory: hosts.ini\n")
    assert [h.name for h in project.fleet().hosts] == ["h1", "h2"]
    assert len(listed) == 3


def test_placement_is_warned_as_ignored_only_on_one_host(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert [w.render().removeprefix(f"{tmp_path}/") for w in project.warnings()] == [
        "compose.yaml:6: services.web.deploy.placement: ignored: Conveyor places every "
        "replica on this host (on a fleet it is done: docs/fleet.md)"
    ]
    (tmp_path / "conveyor.yaml").write_text("hosts:\n  h1: {address: 10.0.0.5}\n")
    assert _project(tmp_path).warnings() == []
