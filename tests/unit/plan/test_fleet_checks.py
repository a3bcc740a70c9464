"""plan.fleet_checks: a fleet's hosts as the remote hosts the controller's Nagios checks."""

from __future__ import annotations

from conveyor.model.checks import RemoteHost
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.provision import NRPE_PORT
from conveyor.plan.fleet_checks import fleet_remote_hosts

FLEET = Fleet(
    hosts=(
        FleetHost(name="h1", address="10.1.0.11", roles=("edge",)),
        FleetHost(name="h2", address="10.1.0.12", roles=("app", "monitor")),
        FleetHost(name="h3", address="10.1.0.13"),
    )
)


def test_every_host_of_the_fleet_is_checked_through_nrpe_the_edge_with_its_haproxy() -> None:
    assert fleet_remote_hosts(FLEET, ()) == (
        RemoteHost(name="h1", address="10.1.0.11", nrpe_port=NRPE_PORT, edge=True),
        RemoteHost(name="h2", address="10.1.0.12", nrpe_port=NRPE_PORT),
        RemoteHost(name="h3", address="10.1.0.13", nrpe_port=NRPE_PORT),
    )


def test_written_hosts_win_and_are_not_added_twice() -> None:
    written = (
        # h2 by its name, at another address and port (NRPE behind a forward, say)
        RemoteHost(name="h2", address="192.0.2.2", nrpe_port=15666),
        # h3's address under another name: the same host, checked once
        RemoteHost(name="store", address="10.1.0.13"),
        RemoteHost(name="db1", address="10.0.0.5"),
        # the edge host written by hand: its address and port stay, its HAProxy is checked
        RemoteHost(name="h1", address="10.9.0.1", nrpe_port=5667),
    )
    assert fleet_remote_hosts(FLEET, written) == (
        RemoteHost(name="h2", address="192.0.2.2", nrpe_port=15666),
        RemoteHost(name="store", address="10.1.0.13"),
        RemoteHost(name="db1", address="10.0.0.5"),
        RemoteHost(name="h1", address="10.9.0.1", nrpe_port=5667, edge=True),
    )


def test_a_fleet_host_named_like_the_controller_is_this_machine() -> None:
    names = [h.name for h in fleet_remote_hosts(FLEET, (), controller="h2")]
    assert names == ["h1", "h3"]


def test_no_fleet_or_hosts_from_aws_adds_nothing() -> None:
    written = (RemoteHost(name="db1", address="10.0.0.5"),)
    assert fleet_remote_hosts(Fleet(), written) == written
    learned = Fleet(hosts=FLEET.hosts, hosts_from="aws")
    assert fleet_remote_hosts(learned, written) == written
    assert fleet_remote_hosts(learned, ()) == ()
