"""EBS snapshots of the stack's host volumes through the EC2 API, and S3 multipart uploads,
against moto's server on 127.0.0.1 (real AWS is not exercised: docs/backups.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from conveyor.app.backup import create_snapshots, list_snapshots
from conveyor.cli.main import app
from conveyor.errors import BackupError
from conveyor.model.backup import BackupDestination, Retention
from conveyor.provision.backup.s3 import BackupBucket
from conveyor.testing.moto import Moto, aws_test_environ

pytestmark = pytest.mark.integration


@pytest.fixture
def ec2(moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    for name, value in aws_test_environ(moto, tmp_path).items():
        monkeypatch.setenv(name, value)
    return boto3.client("ec2", region_name="eu-west-1")


def volume(ec2: object, stack: str) -> str:
    made = ec2.create_volume(  # type: ignore[attr-defined]
        AvailabilityZone="eu-west-1a",
        Size=20,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "conveyor:stack", "Value": stack}]}
        ],
    )
    return str(made["VolumeId"])


def test_snapshots_of_the_stack_volumes_with_retention(ec2: object) -> None:
    ours = sorted([volume(ec2, "shop"), volume(ec2, "shop")])
    volume(ec2, "other-stack")  # not ours: never snapshotted

    first = create_snapshots("shop", "eu-west-1", Retention(keep=1))
    assert sorted(s.volume for s in first.made) == ours
    assert first.deleted == []

    second = create_snapshots("shop", "eu-west-1", Retention(keep=1))
    # One kept per volume: the first run's snapshots go.
    assert sorted(s.id for s in second.deleted) == sorted(s.id for s in first.made)
    left = list_snapshots("shop", "eu-west-1")
    assert sorted(s.id for s in left) == sorted(s.id for s in second.made)


def test_a_stack_without_volumes_is_a_clear_error(ec2: object) -> None:
    with pytest.raises(BackupError, match="no EBS volume is tagged conveyor:stack=missing"):
        create_snapshots("missing", "eu-west-1", Retention())


def test_cli_create_and_list_ebs(
    ec2: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume(ec2, "conveyor-clishop")
    (tmp_path / "compose.yaml").write_text("name: clishop\nservices:\n  web: {image: x}\n")
    (tmp_path / "conveyor.yaml").write_text(
        "environments: {dev: {branch: main}}\naws: {region: eu-west-1}\n"
    )
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(app, ["backup", "create", "--ebs", "--json"])
    assert made.exit_code == 0, made.output
    ids = [s["id"] for s in json.loads(made.output)["made"]]
    listed = runner.invoke(app, ["backup", "list", "--ebs", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [s["id"] for s in json.loads(listed.output)] == ids


def test_a_large_part_goes_up_in_full_size_parts(
    moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 MiB in uneven chunks: a multipart upload whose parts are each 16 MiB (S3 refuses a
    part below 5 MiB but the last), read back byte for byte."""
    for name, value in aws_test_environ(moto, tmp_path).items():
        monkeypatch.setenv(name, value)
    bucket = BackupBucket.connect(BackupDestination(bucket="multipart-test"))
    bucket.create()
    data = os.urandom(40 << 20)
    chunks = (data[i : i + 700_001] for i in range(0, len(data), 700_001))
    bucket.upload("x/part.bin", chunks)
    s3 = boto3.client("s3", region_name="us-east-1")
    head = s3.head_object(Bucket="multipart-test", Key="x/part.bin")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 16 + 16 + 8 MiB
    assert b"".join(bucket.download("x/part.bin")) == data
