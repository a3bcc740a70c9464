"""The `aws:` section of conveyor.yaml: a good corpus that loads (through the whole file's
loader and through the aws-only one, with the same result) and a bad corpus whose files each
name the one message expected (file, line, field, did-you-mean)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.aws import (
    AlarmSettings,
    AwsSettings,
    BackupSettings,
    HostsSettings,
    SnapshotSettings,
)
from conveyor.spec.aws import load_aws_settings, parse_aws_settings
from conveyor.spec.conveyor_file import parse_conveyor

CORPUS = Path(__file__).parent / "aws"
GOOD = sorted((CORPUS / "good").glob("*.yaml"))
BAD = sorted((CORPUS / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_corpus_loads_the_same_both_ways(path: Path) -> None:
    text = path.read_text()
    assert parse_conveyor(text).aws == parse_aws_settings(text)


def test_full_file_sets_every_field() -> None:
    settings = parse_aws_settings((CORPUS / "good" / "full.yaml").read_text())
    assert settings == AwsSettings(
        stack_name="shop-prod",
        region="eu-west-1",
        az_count=3,
        vpc_cidr="10.20.0.0/16",
        nat="single",
        certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c",
        domain="shop.example.com",
        default_service="gateway",
        deletion_protection=False,
        hosts=HostsSettings(
            instance_type="m6i.large",
            min=3,
            max=9,
            desired=3,
            root_volume_gb=30,
            data_volume_gb=200,
            ssh_cidr="203.0.113.0/24",
            key_name="ops",
            deploy_keys_parameter="/shop/deploy-keys",
            address="public",
            ssh_user="deploy",
            ssh_key="keys/deploy",  # relative to conveyor.yaml (here: no directory given)
        ),
        backup=BackupSettings(
            bucket_name="shop-backups.example",
            retention_days=90,
            noncurrent_days=14,
            prefix="shop/backups/",
        ),
        snapshots=SnapshotSettings(enabled=True, interval_hours=12, time="01:30", retain=14),
        alarms=AlarmSettings(
            email="ops@example.com",
            sns_topic_arn="arn:aws:sns:eu-west-1:123456789012:pager",
            cpu_percent=70,
            http_5xx=25,
        ),
    )


def test_absent_or_empty_section_gives_the_defaults() -> None:
    for name in ("no_section", "empty_section"):
        assert parse_aws_settings((CORPUS / "good" / f"{name}.yaml").read_text()) == AwsSettings()
    assert AwsSettings().az_count == 3 and AwsSettings().nat == "per_az"


def test_small_vpc_fits_four_subnets() -> None:
    settings = parse_aws_settings((CORPUS / "good" / "two_zones_small_vpc.yaml").read_text())
    assert (settings.az_count, settings.vpc_cidr) == (2, "10.1.2.0/26")
    assert settings.snapshots.enabled is False


def test_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_aws_settings(tmp_path / "conveyor.yaml") == AwsSettings()


def test_the_hosts_ssh_key_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text("aws:\n  hosts: {ssh_key: keys/deploy}\n")
    settings = load_aws_settings(tmp_path / "conveyor.yaml")
    assert settings.hosts.ssh_key == str(tmp_path / "keys/deploy")
    assert (settings.hosts.ssh_user, settings.hosts.address) == ("deploy", "private")


def _messages(exc: SpecError | SpecErrors) -> list[str]:
    errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
    return [e.render() for e in errors]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_corpus_names_file_line_and_field(path: Path) -> None:
    text = path.read_text()
    expected = text.splitlines()[0].removeprefix("# expect: ")
    for parse in (parse_conveyor, parse_aws_settings):
        with pytest.raises((SpecError, SpecErrors)) as info:
            parse(text)
        messages = _messages(info.value)
        assert any(m.startswith(expected) for m in messages), messages


def test_several_problems_reported_together() -> None:
    text = "aws:\n  az_count: 1\n  hosts: {min: -1}\n  snapshots: {time: '25:00'}\n"
    with pytest.raises(SpecErrors) as info:
        parse_aws_settings(text)
    messages = _messages(info.value)
    assert [m.split(":")[1] for m in messages] == ["2", "3", "4"]
