"""render.ansible_inventory: the inventory `conveyor provision` hands Ansible, checked as data
and through Ansible's own reading of it (ansible-inventory --list, back into a Fleet)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conveyor.host.ansible import list_inventory
from conveyor.host.command import tool_path
from conveyor.host.source_address import source_address
from conveyor.model.checks import ChecksSettings
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.provision import ProvisionSettings
from conveyor.render.ansible_inventory import published_ports, read_inventory, render_inventory
from conveyor.spec.compose import load_compose
from conveyor.spec.fleet import fleet_from_inventory
from tests.unit.render.test_aws_hosts import firewall_rules

FLEET = Fleet(
    hosts=(
        FleetHost(name="web1", address="10.0.0.5", user="deploy", key="/k/id", labels={"z": "a"}),
        FleetHost(name="web2", address="10.0.0.6", port=2222),
        FleetHost(name="mon1", address="10.0.0.9", roles=("monitor",)),
    )
)
SETTINGS = ProvisionSettings(
    published_ports=(8080, 443, 8080),
    checks=ChecksSettings(disk_paths=("/", "/var/lib/docker")),
    deploy_keys=("ssh-ed25519 AAAA deploy",),
)


def test_inventory_holds_each_hosts_connection_roles_ports_and_nrpe() -> None:
    data = read_inventory(render_inventory(FLEET, SETTINGS))["all"]
    assert data["vars"]["conveyor_fleet_addresses"] == ["10.0.0.5", "10.0.0.6", "10.0.0.9"]
    assert data["vars"]["conveyor_published_ports"] == [443, 8080]
    assert data["vars"]["conveyor_deploy_keys"] == ["ssh-ed25519 AAAA deploy"]
    web1, web2, mon1 = (data["hosts"][n] for n in ("web1", "web2", "mon1"))
    assert (web1["ansible_host"], web1["ansible_user"], web1["ansible_ssh_private_key_file"]) == (
        "10.0.0.5",
        "deploy",
        "/k/id",
    )
    assert web2["ansible_port"] == 2222 and "ansible_ssh_private_key_file" not in web2
    # Published ports open on app (and edge) hosts only.
    assert web1["conveyor_open_ports"] == [443, 8080] and mon1["conveyor_open_ports"] == []
    assert web1["conveyor_labels"] == {"z": "a"}
    # NRPE: listens on the host's address, answers the monitor hosts, runs the rendered checks.
    nrpe = web1["conveyor_nrpe_cfg"]
    assert "server_address=10.0.0.5\n" in nrpe
    assert "allowed_hosts=127.0.0.1,10.0.0.9\n" in nrpe
    assert "-p /var/lib/docker" in nrpe and "command[conveyor_dockerd]=" in nrpe
    assert data["children"]["app"]["hosts"] == {"web1": None, "web2": None}
    assert data["children"]["monitor"]["hosts"] == {"mon1": None}
    assert data["children"]["edge"]["hosts"] == {}


def test_rendering_is_deterministic() -> None:
    assert render_inventory(FLEET, SETTINGS) == render_inventory(FLEET, SETTINGS)
    shuffled = SETTINGS.model_copy(update={"published_ports": (443, 8080)})
    assert render_inventory(FLEET, shuffled) == render_inventory(FLEET, SETTINGS)


def test_ansible_reads_it_back_as_the_same_fleet(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(render_inventory(FLEET, SETTINGS))
    back = fleet_from_inventory(list_inventory(path), str(path))
    assert back.hosts == FLEET.hosts
    assert back.inventory_file == str(path)


def test_published_ports_come_from_the_compose_file(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  web: {image: nginx, ports: ['8080:80', '127.0.0.1:9000:9000/udp']}\n"
        "  db: {image: postgres}\n"
    )
    stack = load_compose([Path("compose.yaml")], "shop", {}, cwd=tmp_path).stack
    assert published_ports(stack) == (8080,)


def test_haproxy_configurations_reach_ansible_untemplated(tmp_path: Path) -> None:
    """Rendered files are `!unsafe`: Ansible hands them over byte for byte, even text that
    looks like Jinja, instead of templating them again."""
    cfg = "global\n    # {{ not_a_variable }} {% raw %}\n"
    settings = SETTINGS.model_copy(update={"haproxy_cfg": cfg, "edge_haproxy_cfg": "edge\n"})
    path = tmp_path / "inventory.yml"
    path.write_text(render_inventory(FLEET, settings))
    assert "conveyor_haproxy_cfg: !unsafe |" in path.read_text()
    done = subprocess.run(
        [str(tool_path("ansible", venv_first=True)), "web1", "-i", str(path), "-c", "local",
         "-m", "debug", "-a", "var=conveyor_haproxy_cfg"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert json.dumps(cfg) in done.stdout


def test_fleet_networks_join_the_addresses_the_firewall_lets_in() -> None:
    settings = SETTINGS.model_copy(update={"fleet_networks": ("10.0.0.0/16",)})
    data = read_inventory(render_inventory(FLEET, settings))["all"]
    assert data["vars"]["conveyor_fleet_addresses"][-1] == "10.0.0.0/16"


def test_the_controller_is_let_in_by_the_firewall_and_asked_by_nrpe() -> None:
    """The machine provisioning runs from (the controller: probes, the edge, Nagios) is in the
    firewall's accepted set and NRPE's allowed hosts, after the fleet's own."""
    settings = SETTINGS.model_copy(update={"controller_addresses": ("192.0.2.7",)})
    data = read_inventory(render_inventory(FLEET, settings))["all"]
    assert data["vars"]["conveyor_controller_addresses"] == ["192.0.2.7"]
    nrpe = data["hosts"]["web1"]["conveyor_nrpe_cfg"]
    assert "allowed_hosts=127.0.0.1,10.0.0.9,192.0.2.7\n" in nrpe
    variables = {**data["vars"], **data["hosts"]["web1"], "ansible_managed": "managed"}
    rules = firewall_rules(variables)
    assert "ip saddr { 10.0.0.5, 10.0.0.6, 10.0.0.9, 192.0.2.7 } accept" in rules
    # an inventory written before the setting existed still renders
    del variables["conveyor_controller_addresses"]
    assert "ip saddr { 10.0.0.5, 10.0.0.6, 10.0.0.9 } accept" in firewall_rules(variables)


def test_the_controllers_address_is_none_towards_loopback_or_nowhere() -> None:
    assert source_address("127.0.0.1") is None  # a forwarded port says nothing of where we are
    assert source_address("no-such-host.invalid") is None
