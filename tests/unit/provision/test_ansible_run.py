"""provision.ansible.run: what is refused before Ansible starts, and a play that never runs
being an error rather than an empty success. No host is contacted."""

from __future__ import annotations

import pytest

from conveyor.errors import ConveyorError
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.provision.ansible.run import run_playbook

FLEET = Fleet(hosts=(FleetHost(name="web1", address="192.0.2.1"),))


def test_no_hosts_and_unknown_limit_are_refused() -> None:
    with pytest.raises(ConveyorError, match="no hosts to provision"):
        run_playbook(Fleet(), "all: {}\n")
    with pytest.raises(ConveyorError, match=r"--limit web9: no such host .*hosts: web1"):
        run_playbook(FLEET, "all: {}\n", limit="web9")


def test_a_play_that_never_runs_is_an_error() -> None:
    # An inventory Ansible cannot parse: the playbook stops before any host is contacted.
    with pytest.raises(ConveyorError, match="ansible-playbook did not run"):
        run_playbook(FLEET, "all:\n  hosts: [not, a, mapping\n")
