"""The test hosts themselves: separate machines as SSH and Docker see them (their own
filesystem, sshd and engine), reachable from each other, and breakable the ways the fleet tests
break them."""

from __future__ import annotations

import pytest

from conveyor.testing.fleet_hosts import FleetHostError, TestFleet

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(shared_fleet: TestFleet) -> TestFleet:
    """The worker's shared fleet (conftest.py; made by `fleet_of_hosts`)."""
    return shared_fleet


def test_hosts_are_separate_machines_over_ssh(fleet: TestFleet) -> None:
    h1, h2 = fleet.hosts[:2]
    h1.ssh("touch", "/etc/only-on-h1")
    assert h1.ssh("hostname").strip() == "h1"
    assert "only-on-h1" in h1.ssh("ls", "/etc")
    assert "only-on-h1" not in h2.ssh("ls", "/etc")
    # each its own Docker Engine, answering over SSH as `docker -H ssh://` would use it
    assert h1.ssh("docker", "info", "--format", "{{.Name}}").strip() == "h1"
    assert h2.ssh("docker", "info", "--format", "{{.Name}}").strip() == "h2"


def test_hosts_reach_each_other_and_the_config_names_them(fleet: TestFleet) -> None:
    h1, h2 = fleet.hosts[:2]
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
    h1, h2 = fleet.hosts[:2]
    h2.cut_link()
    with pytest.raises(FleetHostError):
        h1.ssh("ping", "-c", "1", "-W", "2", h2.address)
    h2.restore_link()
    h1.ssh("ping", "-c", "1", "-W", "5", h2.address)


def test_restore_undoes_a_dead_engine_and_a_cut_link(fleet: TestFleet) -> None:
    h1, h2 = fleet.hosts[:2]
    h1.kill_dockerd()
    h2.cut_link()
    assert not h1.docker_ready() and not h2.linked()
    fleet.restore()
    assert h1.docker_ready() and h2.linked()
    h1.ssh("ping", "-c", "1", "-W", "5", h2.address)


def test_the_engine_uses_overlay2_where_the_kernel_allows(fleet: TestFleet) -> None:
    # This machine's /var/lib/docker is on ext4: overlay2 works there (vfs is the fallback).
    driver = fleet.hosts[0].exec("docker", "info", "--format", "{{.Driver}}").strip()
    assert driver == "overlay2"
