"""The Auto Scaling group's hosts join the fleet with the same roles as `conveyor provision`:
the launch template's user data unpacks the shipped playbook with this host's inventory and
runs it locally, with the deploy keys read from SSM (the instance role may read that one
parameter); the hosts reach each other on the fleet's ports only (render.cloudformation,
render.aws_host, provision.ansible.bundle)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from conveyor.errors import AwsError
from conveyor.host.command import tool_path
from conveyor.model.aws import REPLICA_PORTS, AwsFleet, AwsSettings, HostsSettings
from conveyor.model.checks import ChecksSettings
from conveyor.model.stack import PortSpec, Routing, Service, Stack
from conveyor.provision.ansible.bundle import playbook_bundle
from conveyor.provision.ansible.run import playbook_dir
from conveyor.provision.aws.cloudformation import template_body
from conveyor.render.ansible_inventory import read_inventory
from conveyor.render.aws_host import aws_fleet_ports, aws_host_inventory
from conveyor.render.cloudformation import template_json, user_data
from tests.unit.render.test_cloudformation import FLEET, SERVICES, VARIANTS, of_type, shop_services

STACK = Stack(
    project="shop",
    file="/srv/shop/compose.yaml",
    services={
        "web": Service(
            name="web",
            networking="project",
            ports=(PortSpec(target=8000, published=8080), PortSpec(target=9000)),
        ),
        "db": Service(name="db", networking="host", routing=Routing(port=15432)),
        "cache": Service(name="cache", networking="host", ports=(PortSpec(target=6379),)),
    },
)


def render(settings: AwsSettings, fleet: AwsFleet = FLEET) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(template_json(settings, SERVICES, fleet))
    return data


def script(t: dict[str, Any]) -> str:
    data = t["Resources"]["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    text: str = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    return text


def unpack(text: str, into: Path) -> Path:
    bundle = text.split("<<'BUNDLE'\n", 1)[1].split("\nBUNDLE\n", 1)[0]
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(bundle)), mode="r:gz") as tar:
        tar.extractall(into, filter="data")
    return into


def test_user_data_runs_the_shipped_playbook_locally(tmp_path: Path) -> None:
    text = script(render(AwsSettings()))
    assert "ansible-playbook -c local" in text and "apt-get install -y -q ansible-core" in text
    root = unpack(text, tmp_path)
    assert (root / "playbook/site.yml").is_file()
    assert (root / "playbook/roles/haproxy/tasks/main.yml").is_file()
    # Ansible reads the bundled inventory: this host, locally, with the app role set.
    listing = subprocess.run(
        [str(tool_path("ansible-inventory", venv_first=True)), "--list",
         "-i", str(root / "inventory/conveyor.yml")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    inventory = json.loads(listing.stdout)
    assert inventory["app"]["hosts"] == ["localhost"]
    host = inventory["_meta"]["hostvars"]["localhost"]
    assert host["ansible_connection"] == "local"
    assert host["conveyor_fleet_addresses"] == ["10.0.0.0/16"]  # the VPC: hosts come and go
    assert host["conveyor_open_ports"] == [8080]  # the shop's published gateway
    assert host["conveyor_deploy_keys"] == []  # never in the user data: read from SSM at boot
    # the router's base config (ansible-inventory shows it marked unsafe: not templated)
    assert "expose-fd listeners" in json.dumps(host["conveyor_haproxy_cfg"])
    # The playbook and roles as bundled parse (nothing is run: never against this machine).
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(root / "playbook/roles")}
    checked = subprocess.run(
        [str(tool_path("ansible-playbook", venv_first=True)), "--syntax-check", "-c", "local",
         "-i", str(root / "inventory/conveyor.yml"), str(root / "playbook/site.yml")],
        check=False, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The script itself parses as bash.
    bash = subprocess.run(["bash", "-n"], check=False, input=text, capture_output=True, text=True)
    assert bash.returncode == 0, bash.stderr


def test_the_bundle_is_the_same_bytes_for_the_same_inventory() -> None:
    inventory = aws_host_inventory(AwsSettings(), STACK, ChecksSettings())
    assert playbook_bundle(inventory) == playbook_bundle(inventory)
    assert playbook_bundle(inventory) != playbook_bundle(inventory + "# other\n")


def test_deploy_keys_come_from_one_ssm_parameter_the_role_may_read() -> None:
    for settings, name in (
        (AwsSettings(), "/conveyor/${AWS::StackName}/deploy-keys"),
        (AwsSettings(hosts=HostsSettings(deploy_keys_parameter="/team/keys")), "/team/keys"),
    ):
        t = render(settings)
        assert f'aws ssm get-parameter --region "${{AWS::Region}}" --name "{name}"' in script(t)
        policies = t["Resources"]["HostRole"]["Properties"]["Policies"]
        keys = next(p for p in policies if p["PolicyName"] == "deploy-keys")
        [statement] = keys["PolicyDocument"]["Statement"]
        assert statement["Action"] == "ssm:GetParameter"
        arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
        assert statement["Resource"] == {"Fn::Sub": arn + name}


def test_hosts_reach_each_other_on_the_fleet_ports_only() -> None:
    fleet = FLEET.model_copy(update={"ports": aws_fleet_ports(STACK)})
    t = render(AwsSettings(), fleet)
    own = {"Ref": "HostSecurityGroup"}
    ingress = of_type(t, "AWS::EC2::SecurityGroupIngress")
    between = {
        (r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in ingress.values()
        if r["Properties"].get("SourceSecurityGroupId") == own
    }
    assert between == {(6379, 6379), (8080, 8080), (15432, 15432), REPLICA_PORTS}
    egress = of_type(t, "AWS::EC2::SecurityGroupEgress")
    back = {
        (r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in egress.values()
        if r["Properties"].get("DestinationSecurityGroupId") == own
        and r["Properties"]["GroupId"] == own
    }
    assert back == between
    # SSH: nobody by default; the admin range only when set.
    group = t["Resources"]["HostSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert not any(r["Properties"]["FromPort"] == 22 for r in ingress.values())
    admin = render(AwsSettings(hosts=HostsSettings(ssh_cidr="198.51.100.0/24")))
    rules = admin["Resources"]["HostSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["CidrIp"]) for r in rules] == [(22, "198.51.100.0/24")]


def test_fleet_ports_are_published_and_host_networking_ports() -> None:
    # web's unpublished 9000 under project networking is reached through its published port
    assert aws_fleet_ports(STACK) == (6379, 8080, 15432)


def test_user_data_without_a_bundle_or_over_ec2s_limit_is_refused() -> None:
    with pytest.raises(AwsError, match="needs the playbook bundle"):
        user_data(AwsSettings(), AwsFleet())
    big = AwsFleet(playbook="A" * 20000)
    with pytest.raises(AwsError, match="over EC2's 16384"):
        user_data(AwsSettings(), big)
    assert len(user_data(AwsSettings(), FLEET).encode()) <= 16384


def test_the_rendered_inventory_is_yaml_with_the_rendered_haproxy_config_untemplated() -> None:
    text = aws_host_inventory(AwsSettings(vpc_cidr="10.1.0.0/16"), STACK, ChecksSettings())
    assert "conveyor_haproxy_cfg: !unsafe |" in text
    data = read_inventory(text)
    assert data["all"]["vars"]["conveyor_fleet_addresses"] == ["10.1.0.0/16"]


def test_every_variant_with_its_user_data_fits_cloudformations_inline_limit() -> None:
    for settings, services in VARIANTS.values():
        chosen = shop_services() if services is None else services
        template_body(template_json(settings, chosen, FLEET))  # raises when over the limit


def aws_firewall(settings: AwsSettings) -> str:
    """The firewall role's nftables file as an AWS host renders it from its bundled inventory
    (Ansible's own templating, nothing run)."""
    inventory = read_inventory(aws_host_inventory(settings, STACK, ChecksSettings()))["all"]
    variables = {
        **inventory["vars"],
        **inventory["hosts"]["localhost"],
        "ansible_managed": "managed",
    }
    return firewall_rules(variables)


def firewall_rules(variables: dict[str, Any]) -> str:
    """The firewall role's nftables file rendered with `variables` (Ansible's own templating)."""
    text = (playbook_dir() / "roles/firewall/templates/conveyor.nft.j2").read_text()
    rendered: str = Templar(loader=DataLoader(), variables=variables).template(
        trust_as_template(text)
    )
    return rendered


def test_an_aws_hosts_firewall_lets_the_vpc_in() -> None:
    rules = aws_firewall(AwsSettings(vpc_cidr="10.20.0.0/16"))
    assert "ip saddr { 10.20.0.0/16 } accept" in rules
    assert "tcp dport { 8080 } accept" in rules  # the published port, to anyone
