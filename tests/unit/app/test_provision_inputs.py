"""app.provision.provision_inputs: the fleet (inline or from an inventory file Ansible reads),
the published ports of the compose file, and the deploy keys, rendered into the inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.app.provision import provision_inputs, resolve_fleet
from conveyor.errors import SpecError, SpecErrors
from conveyor.model.fleet import Fleet
from conveyor.render.ansible_inventory import read_inventory


def test_inventory_file_fleet_with_ports_and_keys(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("private")
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAA test\n")
    (tmp_path / "hosts.ini").write_text(
        f"[app]\nweb1 ansible_host=10.0.0.5 ansible_ssh_private_key_file={tmp_path / 'id'}\n"
        "[monitor]\nmon1 ansible_host=10.0.0.9\n"
    )
    (tmp_path / "conveyor.yaml").write_text("inventory: hosts.ini\n")
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: nginx, ports: ['8080:80']}\n")
    inputs = provision_inputs(Path("conveyor.yaml"), [], {}, tmp_path)
    assert [(h.name, h.roles) for h in inputs.fleet.hosts] == [
        ("web1", ("app",)),
        ("mon1", ("monitor",)),
    ]
    assert inputs.fleet.inventory_file == str(tmp_path / "hosts.ini")
    assert inputs.settings.published_ports == (8080,)
    assert inputs.settings.deploy_keys == ("ssh-ed25519 AAAA test",)
    data = read_inventory(inputs.inventory)["all"]
    assert data["hosts"]["web1"]["conveyor_open_ports"] == [8080]


def test_no_compose_file_means_no_ports_and_an_inline_fleet_stays_as_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "conveyor.yaml").write_text("hosts:\n  a: {address: 10.0.0.5}\n")
    inputs = provision_inputs(Path("conveyor.yaml"), [], {}, tmp_path)
    assert inputs.settings.published_ports == ()
    assert resolve_fleet(inputs.fleet) == inputs.fleet
    assert resolve_fleet(Fleet()) == Fleet()


def test_a_host_both_app_and_edge_is_refused_naming_its_line(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "hosts:\n  a: {address: 10.0.0.5}\n  b: {address: 10.0.0.6, roles: [app, edge]}\n"
    )
    with pytest.raises(SpecErrors, match=r"conveyor.yaml:3: hosts.b.roles: a host is either"):
        provision_inputs(Path("conveyor.yaml"), [], {}, tmp_path)


def test_edge_hosts_get_the_edge_over_the_app_hosts(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "hosts:\n  a: {address: 10.0.0.5}\n  e: {address: 10.0.0.9, roles: [edge]}\n"
    )
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: nginx, ports: ['8080:80']}\n")
    settings = provision_inputs(Path("conveyor.yaml"), [], {}, tmp_path).settings
    assert "server a 10.0.0.5:8080" in settings.edge_haproxy_cfg
    assert "frontend fe_" not in settings.haproxy_cfg  # the router adds the app hosts' routes


def test_hosts_from_aws_is_refused_naming_its_line(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text("aws: {region: eu-west-1}\nhosts_from: aws\n")
    with pytest.raises(SpecError) as info:
        provision_inputs(Path("conveyor.yaml"), [], {}, tmp_path)
    assert str(info.value).startswith(
        "conveyor.yaml:2: hosts_from: the AWS stack's hosts configure themselves at boot"
    )
