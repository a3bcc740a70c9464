"""EBS snapshots of the hosts' data volumes through the EC2 API (hosts on AWS).

The stack `conveyor aws apply` makes tags every host volume `conveyor:stack=<stack>`, and its
Data Lifecycle Manager policy snapshots them on a schedule. This is the on-demand side:

    ebs = Snapshots.connect(region, endpoint_url)
    ebs.create(stack)            one snapshot per tagged volume, tagged for Conveyor
    ebs.list(stack)              Conveyor's snapshots of the stack, oldest first
    ebs.delete(snapshot_id)      (retention: plan.backup.expired_ids picks which)

Every boto3/botocore error comes out as BackupError with EC2's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.errors import BackupError
from conveyor.model.backup import Snapshot

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

STACK_TAG = "conveyor:stack"  # what render.cloudformation tags host volumes with
MADE_BY = "conveyor:backup"  # on the snapshots this module makes ("on-demand")


class Snapshots:
    def __init__(self, client: EC2Client) -> None:
        self.client = client

    @classmethod
    def connect(cls, region: str, endpoint_url: str | None = None) -> Snapshots:
        with _ec2_errors("connect"):
            session = boto3.session.Session(region_name=region)
            client = session.client(
                "ec2",
                endpoint_url=endpoint_url,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )
        return cls(client)

    def volumes(self, stack: str) -> list[str]:
        """The ids of the stack's host volumes (tagged `conveyor:stack`)."""
        with _ec2_errors("listing volumes"):
            pages = self.client.get_paginator("describe_volumes").paginate(
                Filters=[{"Name": f"tag:{STACK_TAG}", "Values": [stack]}]
            )
            return sorted(v["VolumeId"] for page in pages for v in page.get("Volumes", []))

    def create(
        self, stack: str, description: str = "conveyor backup create --ebs"
    ) -> list[Snapshot]:
        """One snapshot of each of the stack's volumes. Raises BackupError when the stack
        has none (not applied, or not in this region)."""
        volumes = self.volumes(stack)
        if not volumes:
            raise BackupError(
                f"no EBS volume is tagged {STACK_TAG}={stack}: is the stack applied "
                "(`conveyor aws apply`) in this region?"
            )
        out: list[Snapshot] = []
        for volume in volumes:
            with _ec2_errors(f"snapshotting {volume}"):
                made = self.client.create_snapshot(
                    VolumeId=volume,
                    Description=description,
                    TagSpecifications=[
                        {
                            "ResourceType": "snapshot",
                            "Tags": [
                                {"Key": STACK_TAG, "Value": stack},
                                {"Key": MADE_BY, "Value": "on-demand"},
                            ],
                        }
                    ],
                )
            out.append(_snapshot(dict(made), stack))
        return out

    def list(self, stack: str) -> list[Snapshot]:
        with _ec2_errors("listing snapshots"):
            pages = self.client.get_paginator("describe_snapshots").paginate(
                OwnerIds=["self"],
                Filters=[
                    {"Name": f"tag:{STACK_TAG}", "Values": [stack]},
                    {"Name": "tag-key", "Values": [MADE_BY]},
                ],
            )
            found = [_snapshot(dict(s), stack) for page in pages for s in page["Snapshots"]]
        return sorted(found, key=lambda s: (s.started, s.id))

    def delete(self, snapshot_id: str) -> None:
        with _ec2_errors(f"deleting {snapshot_id}"):
            self.client.delete_snapshot(SnapshotId=snapshot_id)


def _snapshot(raw: dict[str, Any], stack: str) -> Snapshot:
    started = raw.get("StartTime")
    return Snapshot(
        id=str(raw["SnapshotId"]),
        volume=str(raw.get("VolumeId", "")),
        started=started.timestamp() if started is not None else 0.0,
        state=str(raw.get("State", "")),
        size_gb=int(raw.get("VolumeSize") or 0),
        stack=stack,
    )


@contextmanager
def _ec2_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except ClientError as e:
        error: Any = e.response.get("Error", {})
        raise BackupError(f"EC2: {doing}: {error.get('Message') or e}") from None
    except BotoCoreError as e:
        raise BackupError(f"EC2: {doing}: {e}") from None
