"""`hosts_from: aws` through Project.fleet: one learned fleet per version of conveyor.yaml in a
process, so every engine the server opens (per environment, sync and heal) shares one boto3
client and asks AWS once a period; a changed file makes a new one. AWS is a stand-in that
counts what is asked of it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest

from conveyor.app import aws_hosts
from conveyor.app.project import Project
from conveyor.model.aws import AwsInstance

COMPOSE = "name: shop\nservices:\n  web:\n    image: web\n"
CONVEYOR = "hosts_from: aws\naws:\n  region: eu-west-1\n"


class StandInGroup:
    """provision.aws.hosts.AutoScalingHosts as the project sees it: what it was asked."""

    connected: ClassVar[list[tuple[str, str | None]]] = []
    asked: ClassVar[list[str]] = []

    @classmethod
    def connect(cls, region: str, endpoint_url: str | None = None) -> StandInGroup:
        cls.connected.append((region, endpoint_url))
        return cls()

    def instances(self, stack: str) -> list[AwsInstance]:
        self.asked.append(stack)
        return [
            AwsInstance(
                instance_id="i-0a",
                zone="eu-west-1a",
                instance_type="t3.small",
                state="running",
                lifecycle="InService",
                private_ip="10.0.1.5",
            )
        ]


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> type[StandInGroup]:
    monkeypatch.setattr(StandInGroup, "connected", [])
    monkeypatch.setattr(StandInGroup, "asked", [])
    monkeypatch.setattr(aws_hosts, "AutoScalingHosts", StandInGroup)
    return StandInGroup


def _open(tmp_path: Path) -> Project:
    return Project.open(None, None, {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, tmp_path)


def test_one_learned_fleet_per_version_of_conveyor_yaml(
    tmp_path: Path, group: type[StandInGroup]
) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    conveyor = tmp_path / "conveyor.yaml"
    conveyor.write_text(CONVEYOR)

    first = _open(tmp_path)
    assert [h.name for h in first.fleet().hosts] == ["i-0a"]
    kept = first.fleet_source()
    for _ in range(3):  # the server opens a project per environment, sync and heal
        again = _open(tmp_path)
        assert again.fleet_source() is kept
        assert [h.address for h in again.fleet().hosts] == ["10.0.1.5"]
    assert group.connected == [("eu-west-1", "http://127.0.0.1:1")]  # one boto3 client
    assert group.asked == ["conveyor-shop"]  # one question (the 30 s period is not over)

    # conveyor.yaml edited (another stack name): a new learned fleet, asked again
    before = conveyor.stat().st_mtime_ns
    conveyor.write_text(CONVEYOR + "  stack_name: shop-prod\n")
    os.utime(conveyor, ns=(before + 1_000_000, before + 1_000_000))
    edited = _open(tmp_path)
    assert edited.fleet_source() is not kept
    edited.fleet()
    assert group.asked == ["conveyor-shop", "shop-prod"]
    assert len(group.connected) == 2
