"""app.provision.provision_inputs: the fleet (inline or from an inventory file Ansible reads),
the published ports of the compose file, and the deploy keys, rendered into the inventory."""

from __future__ import annotations

from pathlib import Path

import yaml

from conveyor.app.provision import provision_inputs, resolve_fleet
from conveyor.model.fleet import Fleet


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
    data = yaml.safe_load(inputs.inventory)["all"]
    assert data["hosts"]["web1"]["conveyor_open_ports"] == [8080]


def test_no_compose_file_means_no_ports_and_an_inline_fleet_stays_as_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "conveyor.yaml").write_text("hosts:\n  a: {address: 10.0.0.5}\n")
    inputs = provision_inputs(Path("conveyor.yaml"), [], {}, tmp_path)
    assert inputs.settings.published_ports == ()
    assert resolve_fleet(inputs.fleet) == inputs.fleet
    assert resolve_fleet(Fleet()) == Fleet()
