"""The test hosts themselves: separate machines as SSH and Docker see them (their own
filesystem, sshd and engine), reachable from each other, and breakable the ways the fleet tests
break them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor.testing.fleet_hosts import FleetHostError, TestFleet, fleet_of_hosts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet() -> Iterator[TestFleet]:
    with fleet_of_hosts(2) as made:
        yield made


def test_hosts_are_separate_machines_over_ssh(fleet: TestFleet) -> None:
    h1, h2 = fleet.hosts
    h1.ssh("touch", "/etc/only-on-h1")
    assert h1.ssh("hostname").strip() == "h1"
    assert "only-on-h1" in h1.ssh("ls", "/etc")
    assert "only-on-h1" not in h2.ssh("ls", "/etc")
    # each its own Docker Engine, answering over SSH as `docker -H ssh://` would use it
    assert h1.ssh("docker", "info", "--format", "{{.Name}}").strip() == "h1"
    assert h2.ssh("docker", "info", "--format", "{{.Name}}").strip() == "h2"


def test_hosts_reach_each_other_and_the_config_names_them(fleet: TestFleet) -> None:
    h1, h2 = fleet.hosts
    h1.ssh("ping", "-c", "1", "-W", "5", h2.address)
    model = h2.fleet_host(roles=("app", "edge"), labels={"zone": "b"})
    assert (model.address, model.roles) == (h2.address, ("app", "edge"))
    assert model.labels == {"zone": "b"}
    assert f"Host h2 {h2.address}" in fleet.ssh_config.read_text()


def test_an_engine_killed_and_started_again(fleet: TestFleet) -> None:
    h2 = fleet.hosts[1]
    h2.kill_dockerd()
    assert not h2.docker_ready()
    h2.start_dockerd()
    assert h2.docker_ready()


def test_a_cut_link_and_its_return(fleet: TestFleet) -> None:
    h1, h2 = fleet.hosts
    h2.cut_link()
    with pytest.raises(FleetHostError):
        h1.ssh("ping", "-c", "1", "-W", "2", h2.address)
    h2.restore_link()
    h1.ssh("ping", "-c", "1", "-W", "5", h2.address)
