"""host.ansible.list_inventory: Ansible's own reading of an inventory file (INI here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError
from conveyor.host.ansible import list_inventory
from conveyor.spec.fleet import fleet_from_inventory


def test_ini_inventory_with_role_groups_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text(
        "[app]\n"
        "web1 ansible_host=10.0.0.5 ansible_user=deploy "
        'conveyor_labels=\'{"zone": "a"}\'\n'
        "[edge]\n"
        "edge1 ansible_host=10.0.0.9 ansible_port=2222\n"
    )
    fleet = fleet_from_inventory(list_inventory(path), str(path))
    assert [(h.name, h.address, h.user, h.port, h.roles, h.labels) for h in fleet.hosts] == [
        ("web1", "10.0.0.5", "deploy", 22, ("app",), {"zone": "a"}),
        ("edge1", "10.0.0.9", "root", 2222, ("edge",), {}),
    ]


def test_unreadable_inventory_is_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts: [not, a, mapping\n")
    with pytest.raises(SpecError) as info:
        list_inventory(path, "ansible/hosts.yml")
    assert info.value.render().startswith("ansible/hosts.yml: inventory: Ansible cannot read it")
    with pytest.raises(SpecError, match="no such inventory file"):
        list_inventory(tmp_path / "absent.ini")
