"""AWS infrastructure as data: conveyor.yaml's `aws:` section (AwsSettings, every field with a
default so a file that says nothing about AWS still renders a template), and what the template
is rendered from besides it (AwsService: one published HTTP service of the compose stack).

Pure types: `spec.aws` reads them, `render.cloudformation` turns them into a CloudFormation
template, `provision.aws` deploys that template (docs/aws.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.frozen import Frozen

NatMode = Literal["per_az", "single"]
# Which of an instance's addresses the controller reaches it at (SSH, its engine, the replicas
# it publishes): private when the Conveyor server runs inside the VPC, public otherwise.
HostAddress = Literal["private", "public"]

# Debian 12 (the distribution the fleet's Ansible roles target), as the public SSM parameter
# Debian publishes in every region: the template resolves it at deploy time, so no AMI id
# (which differs per region and changes with every point release) is written in git.
DEFAULT_IMAGE_PARAMETER = "/aws/service/debian/release/12/latest/amd64"


class HostsSettings(Frozen):
    """The Auto Scaling group of Docker hosts."""

    instance_type: str = "t3.small"
    min: int = 2  # two hosts in two zones: losing one zone loses no service
    max: int = 4
    desired: int = 2
    root_volume_gb: int = 20  # the system (Debian is ~2 GB)
    data_volume_gb: int = 50  # /var/lib/docker: images, containers, named volumes
    ssh_cidr: str | None = None  # SSH from this range only; None: no SSH (use SSM)
    key_name: str | None = None  # an EC2 key pair for that SSH access
    image_parameter: str = DEFAULT_IMAGE_PARAMETER
    # The SSM parameter holding the deploy user's public keys (one a line), read by each host
    # at boot with its instance role, which may read exactly this parameter; None:
    # /conveyor/<stack name>/deploy-keys. Never written into the user data.
    deploy_keys_parameter: str | None = None
    # How the Conveyor server reaches the group's hosts when conveyor.yaml says
    # `hosts_from: aws` (controller-side only: nothing of this is in the template).
    address: HostAddress = "private"
    # The user the hosts' roles make for Conveyor (in the docker group, the deploy keys from
    # SSM as its authorized keys), not the AMI's `admin`: that one cannot reach the engine.
    ssh_user: str = "deploy"
    ssh_key: str | None = None  # a private key file (absolute once read); None: ssh's defaults


class BackupSettings(Frozen):
    """The S3 bucket backups go to (issue 12 item 9 writes to it)."""

    bucket_name: str | None = None  # None: CloudFormation names it (unique, from the stack)
    retention_days: int = 30  # current objects expire after this
    noncurrent_days: int = 7  # replaced or deleted versions are kept this long
    prefix: str = "backups/"  # the hosts may write only here


class SnapshotSettings(Frozen):
    """The EBS snapshot policy (Data Lifecycle Manager) over the hosts' data volumes."""

    enabled: bool = True
    interval_hours: int = 24  # DLM allows 1, 2, 3, 4, 6, 8, 12 or 24
    time: str = "03:00"  # UTC, when the first snapshot of the day is taken
    retain: int = 7  # snapshots kept per volume


class AlarmSettings(Frozen):
    """CloudWatch alarms and where they notify."""

    email: str | None = None  # subscribed to a topic the stack creates
    sns_topic_arn: str | None = None  # an existing topic instead (or as well)
    cpu_percent: int = 80  # the group's average CPU over 10 minutes
    http_5xx: int = 10  # 5xx answers from the targets per 5 minutes


class AwsSettings(Frozen):
    """conveyor.yaml's `aws:` section (docs/aws.md)."""

    stack_name: str | None = None  # None: `conveyor-<project>`
    region: str = "us-east-1"
    az_count: int = 3
    vpc_cidr: str = "10.0.0.0/16"
    # per_az: a NAT gateway in every zone (a zone's loss leaves the others their way out);
    # single: one shared gateway, cheaper, but the private subnets lose egress with its zone.
    nat: NatMode = "per_az"
    certificate_arn: str | None = None  # ACM certificate: HTTPS on 443, 80 redirects to it
    domain: str | None = None  # services other than the default are served at NAME.<domain>
    default_service: str | None = None  # None: the only published service, else the first
    deletion_protection: bool = True  # the load balancer's
    hosts: HostsSettings = HostsSettings()
    backup: BackupSettings = BackupSettings()
    snapshots: SnapshotSettings = SnapshotSettings()
    alarms: AlarmSettings = AlarmSettings()


class AwsService(Frozen):
    """A published HTTP service of the stack, as the load balancer serves it: a target group
    on the hosts' `port` (where each host serves the service), health-checked at `path`."""

    name: str
    port: int
    path: str = "/"
    interval: int = 15  # seconds, the ALB's range 5-300
    timeout: int = 5  # seconds, 2-120 and below the interval
    healthy: int = 2  # checks in a row, 2-10
    unhealthy: int = 3  # checks in a row, 2-10


# Docker publishes a replica's port for the other hosts on an ephemeral port of its host
# (Linux's default ip_local_port_range): app hosts accept this range from each other.
REPLICA_PORTS = (32768, 60999)


class AwsFleet(Frozen):
    """How the Auto Scaling group's hosts join the fleet: the ports they accept from each
    other, and what the launch template's user data runs (the shipped playbook, locally)."""

    # TCP ports app hosts accept from each other (besides REPLICA_PORTS): the published
    # ports, and the ports services listen on under host networking.
    ports: tuple[int, ...] = ()
    # base64 of a tar.gz holding playbook/ (site.yml and its roles, as `conveyor provision`
    # runs them) and inventory/conveyor.yml (this host, with `ansible_connection: local`).
    playbook: str = ""


# The template's logical id of the hosts' Auto Scaling group (render.cloudformation makes it,
# provision.aws.hosts finds it in the deployed stack).
HOST_GROUP = "HostGroup"


class AwsInstance(Frozen):
    """One EC2 instance of the stack's Auto Scaling group, as AWS describes it."""

    instance_id: str
    zone: str  # its availability zone, e.g. eu-west-1a
    instance_type: str
    state: str  # EC2's: pending, running, shutting-down, terminated, stopping, stopped
    lifecycle: str  # the group's: Pending, InService, Terminating, Standby, ...
    private_ip: str | None = None
    public_ip: str | None = None


# --- what CloudFormation says back (provision.aws reads it, cli prints it) -------------------


class StackChange(Frozen):
    """One resource change of a change set."""

    action: str  # Add, Modify, Remove (CloudFormation's words)
    logical_id: str
    resource_type: str
    replacement: str | None = None  # True, False or Conditional for a Modify


class ChangeSetPlan(Frozen):
    """A change set CloudFormation computed: what `apply` would do."""

    stack_name: str
    kind: Literal["CREATE", "UPDATE"]
    change_set: str  # its id (ARN)
    changes: tuple[StackChange, ...] = ()


class StackEvent(Frozen):
    """One line of a stack's progress."""

    logical_id: str
    resource_type: str
    status: str
    reason: str | None = None


class StackState(Frozen):
    """A deployed stack: its status and outputs."""

    name: str
    status: str
    outputs: dict[str, str] = Field(default_factory=dict)


DiffAction = Literal["added", "removed", "changed"]


class ResourceDiff(Frozen):
    """One resource that differs between the deployed template and the rendered one; `lines`
    is a unified diff of its JSON (deployed -> rendered)."""

    logical_id: str
    resource_type: str
    action: DiffAction
    lines: tuple[str, ...] = ()
