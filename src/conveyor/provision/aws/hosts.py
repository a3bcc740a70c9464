"""The instances of a stack's Auto Scaling group, as AWS describes them (`hosts_from: aws`,
`conveyor aws hosts`; docs/aws.md, "The group's hosts as the fleet").

    group = AutoScalingHosts.connect(region, endpoint_url)   # AWS_ENDPOINT_URL: moto
    group.instances("shop-prod")        # [AwsInstance(instance_id, zone, state, ...), ...]

Three calls: CloudFormation names the group (the stack's `HostGroup` resource), Auto Scaling
lists its instances (zone, lifecycle state), EC2 gives their state, type and addresses.
Every boto3/botocore error comes out as AwsError with AWS's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.errors import AwsError
from conveyor.model.aws import HOST_GROUP, AwsInstance
from conveyor.provision.aws.errors import aws_errors, message

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ec2 import EC2Client

_GONE = "does not exist"
_BATCH = 100  # instance ids per DescribeInstances call (EC2 takes up to 1000; keep it small)


class AutoScalingHosts:
    def __init__(
        self,
        cloudformation: CloudFormationClient,
        autoscaling: AutoScalingClient,
        ec2: EC2Client,
        region: str,
    ) -> None:
        self.cloudformation = cloudformation
        self.autoscaling = autoscaling
        self.ec2 = ec2
        self.region = region

    @classmethod
    def connect(cls, region: str, endpoint_url: str | None = None) -> AutoScalingHosts:
        """Clients for `region`; `endpoint_url` (else AWS_ENDPOINT_URL, read by boto3) points
        them elsewhere than AWS. Few retries: a controller asks again at its next look."""
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
        with aws_errors("connect"):
            session = boto3.session.Session(region_name=region)
            return cls(
                session.client("cloudformation", endpoint_url=endpoint_url, config=config),
                session.client("autoscaling", endpoint_url=endpoint_url, config=config),
                session.client("ec2", endpoint_url=endpoint_url, config=config),
                region,
            )

    def group_name(self, stack: str) -> str:
        """The name of `stack`'s Auto Scaling group. Raises AwsError when the stack or its
        group does not exist."""
        try:
            pages = self.cloudformation.get_paginator("list_stack_resources")
            for page in pages.paginate(StackName=stack):
                for resource in page["StackResourceSummaries"]:
                    if resource["LogicalResourceId"] == HOST_GROUP:
                        name = resource.get("PhysicalResourceId")
                        if name:
                            return name
        except ClientError as e:
            if _GONE in message(e):
                raise AwsError(
                    f"stack {stack} does not exist in {self.region}: `conveyor aws apply` "
                    "creates it"
                ) from None
            raise AwsError(f"resources of stack {stack}: {message(e)}") from None
        except BotoCoreError as e:  # no credentials, endpoint unreachable, ...
            raise AwsError(f"resources of stack {stack}: {e}") from None
        raise AwsError(
            f"stack {stack} in {self.region} has no Auto Scaling group {HOST_GROUP} (yet): "
            "`conveyor aws apply` creates it"
        )

    def instances(self, stack: str) -> list[AwsInstance]:
        """Every instance of `stack`'s group, whatever its state, by instance id."""
        group = self.group_name(stack)
        with aws_errors(f"Auto Scaling group {group}"):
            described = self.autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=[group]
            )["AutoScalingGroups"]
        if not described:
            raise AwsError(f"Auto Scaling group {group} (stack {stack}) does not exist")
        members = {i["InstanceId"]: i for i in described[0].get("Instances", [])}
        ids = sorted(members)
        found: list[AwsInstance] = []
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            with aws_errors(f"instances of Auto Scaling group {group}"):
                pages = self.ec2.get_paginator("describe_instances")
                for page in pages.paginate(InstanceIds=batch):
                    for reservation in page["Reservations"]:
                        for raw in reservation.get("Instances", []):
                            found.append(_instance(raw, members.get(raw.get("InstanceId", ""))))
        return sorted(found, key=lambda i: i.instance_id)


def _instance(raw: Any, member: Any) -> AwsInstance:
    """EC2's description of an instance, with the group's view of it (`member`)."""
    member = member or {}
    return AwsInstance(
        instance_id=raw["InstanceId"],
        zone=raw.get("Placement", {}).get("AvailabilityZone") or member.get("AvailabilityZone", ""),
        instance_type=raw.get("InstanceType") or member.get("InstanceType", ""),
        state=raw.get("State", {}).get("Name", "unknown"),
        lifecycle=member.get("LifecycleState", "unknown"),
        private_ip=raw.get("PrivateIpAddress") or None,
        public_ip=raw.get("PublicIpAddress") or None,
    )
