"""render.cloudformation: the template's shape (zones, subnets, security groups, bucket,
snapshots, alarms), byte-identical output, and every variant passing cfn-lint and checkov with
exactly the suppressions the template explains (checkov runs with --skip-download: offline)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import AwsError
from conveyor.model.aws import (
    AlarmSettings,
    AwsFleet,
    AwsService,
    AwsSettings,
    HostsSettings,
    SnapshotSettings,
)
from conveyor.model.checks import ChecksSettings
from conveyor.provision.ansible.bundle import playbook_bundle
from conveyor.render.aws_host import aws_fleet_ports, aws_host_inventory
from conveyor.render.cloudformation import (
    SUPPRESSIONS,
    aws_services,
    parameters_json,
    template_json,
)
from conveyor.spec.aws import load_aws_settings
from conveyor.spec.compose import load_stack

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c"
SERVICES = (
    AwsService(name="gateway", port=8080, path="/health"),
    AwsService(name="catalog-api", port=8081, interval=5, timeout=3),
)
FULL = AwsSettings(
    region="eu-west-1",
    nat="single",
    certificate_arn=CERT,
    domain="shop.example.com",
    default_service="gateway",
    hosts=HostsSettings(ssh_cidr="203.0.113.0/24", key_name="ops"),
    alarms=AlarmSettings(email="ops@example.com"),
)


SHOP = load_stack(ROOT / "examples/shop/compose.yaml", environ={})
# The hosts' part, as `conveyor aws render` makes it for the shop example.
FLEET = AwsFleet(
    ports=aws_fleet_ports(SHOP),
    playbook=playbook_bundle(aws_host_inventory(AwsSettings(), SHOP, ChecksSettings())),
)


def shop_services() -> tuple[AwsService, ...]:
    return aws_services(SHOP)


def render(
    settings: AwsSettings, services: tuple[AwsService, ...] = SERVICES, fleet: AwsFleet = FLEET
) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(template_json(settings, services, fleet))
    return data


def of_type(t: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


def test_shop_example_publishes_its_gateway_only() -> None:
    assert shop_services() == (AwsService(name="gateway", port=8080, path="/health"),)


def test_same_input_gives_byte_identical_json() -> None:
    assert template_json(FULL, SERVICES, FLEET) == template_json(FULL, SERVICES, FLEET)
    assert template_json(FULL, SERVICES, FLEET) != template_json(AwsSettings(), SERVICES, FLEET)


def test_three_zones_public_and_private_subnets_inside_the_vpc() -> None:
    t = render(AwsSettings())
    subnets = of_type(t, "AWS::EC2::Subnet")
    assert sorted(subnets) == [f"{k}Subnet{n}" for k in ("Private", "Public") for n in (1, 2, 3)]
    vpc = ipaddress.IPv4Network(t["Resources"]["Vpc"]["Properties"]["CidrBlock"])
    nets = [ipaddress.IPv4Network(s["Properties"]["CidrBlock"]) for s in subnets.values()]
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    zones = {json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets.values()}
    assert len(zones) == 3
    assert len(of_type(t, "AWS::EC2::NatGateway")) == 3  # per_az by default
    assert len(of_type(render(FULL), "AWS::EC2::NatGateway")) == 1


def test_only_the_load_balancer_faces_the_internet() -> None:
    for settings, ports in ((AwsSettings(), [80]), (FULL, [80, 443])):
        t = render(settings)
        alb = t["Resources"]["LoadBalancerSecurityGroup"]["Properties"]
        assert [r["FromPort"] for r in alb["SecurityGroupIngress"]] == ports
        host = t["Resources"]["HostSecurityGroup"]["Properties"]
        ingress = [r["Properties"] for r in of_type(t, "AWS::EC2::SecurityGroupIngress").values()]
        from_alb = [r for r in ingress if r["SourceSecurityGroupId"]["Ref"] != "HostSecurityGroup"]
        assert {r["FromPort"] for r in from_alb} == {8080, 8081}
        assert all(
            r["SourceSecurityGroupId"] == {"Ref": "LoadBalancerSecurityGroup"} for r in from_alb
        )
        assert all("CidrIp" not in r for r in ingress)  # no address range reaches a host
        ssh = host.get("SecurityGroupIngress", [])
        if settings.hosts.ssh_cidr is None:
            assert ssh == []
        else:
            assert [(r["FromPort"], r["CidrIp"]) for r in ssh] == [(22, "203.0.113.0/24")]


def test_backup_bucket_is_private_versioned_encrypted_and_expires() -> None:
    t = render(AwsSettings())
    bucket = t["Resources"]["BackupBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    rule = props["LifecycleConfiguration"]["Rules"][0]
    assert (rule["ExpirationInDays"], rule["NoncurrentVersionExpiration"]["NoncurrentDays"]) == (
        30,
        7,
    )
    policy = t["Resources"]["BackupBucketPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_host_role_reaches_only_the_backup_prefix() -> None:
    t = render(AwsSettings())
    statements = t["Resources"]["HostRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    assert statements[0]["Condition"] == {"StringLike": {"s3:prefix": "backups/*"}}
    assert statements[1]["Resource"] == {"Fn::Sub": "${BackupBucket.Arn}/backups/*"}
    assert "*" not in json.dumps([s["Action"] for s in statements])


def test_rolling_update_keeps_hosts_in_service_below_max_size() -> None:
    def kept(low: int, high: int) -> str:
        t = render(AwsSettings(hosts=HostsSettings(min=low, max=high, desired=low)))
        update = t["Resources"]["HostGroup"]["UpdatePolicy"]["AutoScalingRollingUpdate"]
        return str(update["MinInstancesInService"])

    assert (kept(2, 4), kept(3, 3), kept(0, 1)) == ("2", "2", "0")


def test_snapshot_policy_follows_the_settings() -> None:
    t = render(AwsSettings())
    schedule = t["Resources"]["SnapshotPolicy"]["Properties"]["PolicyDetails"]["Schedules"][0]
    assert schedule["CreateRule"] == {"Interval": 24, "IntervalUnit": "HOURS", "Times": ["03:00"]}
    assert schedule["RetainRule"] == {"Count": 7}
    off = render(AwsSettings(snapshots=SnapshotSettings(enabled=False)))
    assert "SnapshotPolicy" not in off["Resources"] and "SnapshotRole" not in off["Resources"]


def test_one_target_group_and_unhealthy_alarm_per_service_others_by_host_name() -> None:
    t = render(FULL)
    groups = of_type(t, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert sorted(groups) == ["TargetGroupCatalogApi", "TargetGroupGateway"]
    catalog = groups["TargetGroupCatalogApi"]["Properties"]
    assert (catalog["Port"], catalog["HealthCheckPath"], catalog["HealthCheckIntervalSeconds"]) == (
        8081,
        "/",
        5,
    )
    https = t["Resources"]["HttpsListener"]["Properties"]
    assert https["DefaultActions"][0]["TargetGroupArn"] == {"Ref": "TargetGroupGateway"}
    rule = t["Resources"]["RuleCatalogApi"]["Properties"]
    assert rule["Conditions"][0]["HostHeaderConfig"]["Values"] == ["catalog-api.shop.example.com"]
    http = t["Resources"]["HttpListener"]["Properties"]["DefaultActions"][0]
    assert http["Type"] == "redirect"
    alarms = of_type(t, "AWS::CloudWatch::Alarm")
    assert sorted(alarms) == [
        "HostCpuAlarm",
        "Http5xxAlarm",
        "UnhealthyHostsCatalogApi",
        "UnhealthyHostsGateway",
    ]
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())


def test_no_published_service_still_renders_a_load_balancer_answering_404() -> None:
    t = render(AwsSettings(), ())
    action = t["Resources"]["HttpListener"]["Properties"]["DefaultActions"][0]
    assert action["FixedResponseConfig"]["StatusCode"] == "404"
    assert t["Resources"]["HostGroup"]["Properties"]["HealthCheckType"] == "EC2"


def test_the_group_replaces_hosts_on_ec2_checks_even_behind_the_load_balancer() -> None:
    """A host serves nothing until Conveyor places replicas on it: ELB checks would have the
    group replace every new host after its grace period."""
    t = render(AwsSettings(), SERVICES)
    group = t["Resources"]["HostGroup"]["Properties"]
    assert group["TargetGroupARNs"] and group["HealthCheckType"] == "EC2"


def test_settings_that_do_not_fit_the_services_are_refused() -> None:
    with pytest.raises(AwsError, match="default_service: 'shop' is not a published"):
        template_json(AwsSettings(default_service="shop"), SERVICES, FLEET)
    clash = (AwsService(name="a-b", port=1), AwsService(name="a_b", port=2))
    with pytest.raises(AwsError, match="same resource name 'AB'"):
        template_json(AwsSettings(), clash, FLEET)


def test_parameters_name_the_image_parameter() -> None:
    assert json.loads(parameters_json(AwsSettings())) == [
        {
            "ParameterKey": "HostImage",
            "ParameterValue": "/aws/service/debian/release/12/latest/amd64",
        }
    ]


# --- the scanners --------------------------------------------------------------------------

VARIANTS = {
    "shop": (load_aws_settings(ROOT / "examples/shop/conveyor.yaml"), None),
    "defaults": (AwsSettings(), SERVICES),
    "full": (FULL, SERVICES),
    "two-zones-no-services": (
        AwsSettings(az_count=2, vpc_cidr="10.1.0.0/24", deletion_protection=False),
        (),
    ),
    "six-zones-sns": (
        AwsSettings(
            az_count=6,
            alarms=AlarmSettings(sns_topic_arn="arn:aws:sns:us-east-1:123456789012:pager"),
        ),
        SERVICES,
    ),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("templates")
    files = {}
    for name, (settings, services) in VARIANTS.items():
        path = out / f"{name}.json"
        chosen = shop_services() if services is None else services
        path.write_text(template_json(settings, chosen, FLEET))
        files[name] = path
    return files


def test_every_variant_passes_cfn_lint(rendered: dict[str, Path]) -> None:
    result = subprocess.run(
        [BIN / "cfn-lint", *map(str, rendered.values())],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_variant_passes_checkov_with_only_explained_suppressions(
    rendered: dict[str, Path],
) -> None:
    args = [str(BIN / "checkov"), "--framework", "cloudformation", "--skip-download", "-o", "json"]
    for path in rendered.values():
        args += ["-f", str(path)]
    result = subprocess.run(args, check=False, capture_output=True, text=True)
    report = json.loads(result.stdout)
    results = report["results"]
    assert results["failed_checks"] == [], [c["check_id"] for c in results["failed_checks"]]
    assert report["summary"]["parsing_errors"] == 0
    skipped = {
        (Path(c["file_path"]).stem, c["check_id"], c["resource"].split(".")[-1])
        for c in results["skipped_checks"]
    }
    declared = set()
    for name, path in rendered.items():
        for logical, resource in json.loads(path.read_text())["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip["comment"]) > 40  # a reason, not a placeholder
                declared.add((name, skip["id"], logical))
    # Every suppression written is one checkov needed: none is there "just in case".
    assert skipped == declared
    assert declared  # the public load balancer's port 80 at least


def test_docs_list_every_suppression_with_its_reason() -> None:
    docs = (ROOT / "docs/aws.md").read_text()
    for s in SUPPRESSIONS:
        assert f"`{s.rule}`" in docs and f"`{s.resource}`" in docs, s.rule
