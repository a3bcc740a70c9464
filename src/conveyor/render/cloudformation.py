"""AwsSettings + the stack's published services -> a CloudFormation template (docs/aws.md).

    aws_services(stack)                      the published HTTP services the ALB serves
    render_template(settings, services, fleet)  the template as a troposphere Template
    template_json(settings, services, fleet)    ... as JSON text, byte-identical for the same input
    parameters_json(settings)                the values of its parameters (CLI file format)
    user_data(settings, fleet)               the hosts' bootstrap script (before Sub)

What is generated: a VPC over `az_count` zones (a public and a private subnet each, an
internet gateway, NAT gateways per zone or one shared, route tables); an Application Load
Balancer in the public subnets with a target group and health check per published service;
an Auto Scaling group of Docker hosts in the private subnets from a launch template; security
groups that let the internet reach only the ALB (80, and 443 with a certificate) and the hosts
only the ALB on the services' ports, each other on the fleet's ports (AwsFleet.ports and
REPLICA_PORTS), and SSH from `hosts.ssh_cidr` when set; the hosts' user data runs the shipped
playbook locally (AwsFleet.playbook), with the deploy keys read from SSM; the backup
bucket; a Data Lifecycle Manager policy snapshotting the hosts' volumes; IAM roles; CloudWatch
alarms and Outputs.

Where checkov's rule is knowingly not met, the resource says why in its Metadata
(`checkov.skip[].comment`): every suppression comes from SUPPRESSIONS below, docs/aws.md lists
the same table, and the unit tests check each one is needed (checkov reports it as skipped).
cfn-lint needs no suppression.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from troposphere import (
    AWSObject,
    Base64,
    Export,
    GetAtt,
    GetAZs,
    Output,
    Parameter,
    Ref,
    Select,
    Sub,
    Tags,
    Template,
    cloudwatch,
    dlm,
    ec2,
    iam,
    s3,
    sns,
)
from troposphere import autoscaling as asg
from troposphere import elasticloadbalancingv2 as elb
from troposphere.policies import AutoScalingRollingUpdate, UpdatePolicy

from conveyor.errors import AwsError
from conveyor.model.aws import HOST_GROUP, REPLICA_PORTS, AwsFleet, AwsService, AwsSettings
from conveyor.model.stack import Service, Stack

# --- what the template knowingly does not do, and why ---------------------------------------


@dataclass(frozen=True)
class Suppression:
    tool: str  # "checkov" or "cfn-lint"
    rule: str
    resource: str  # a logical id, or a prefix ending in '*'
    reason: str
    when: str = "always"  # or "no-certificate": only while aws.certificate_arn is unset


SUPPRESSIONS: tuple[Suppression, ...] = (
    Suppression(
        "checkov",
        "CKV_AWS_260",
        "LoadBalancerSecurityGroup",
        "the public load balancer serves the internet on port 80 by design (it redirects to "
        "HTTPS when aws.certificate_arn is set); nothing else is open to the internet",
    ),
    Suppression(
        "checkov",
        "CKV_AWS_91",
        "LoadBalancer",
        "ALB access logs need a bucket with SSE-S3 that the region's ELB account may write to; "
        "the only bucket here holds backups, encrypted with KMS; not generated yet",
    ),
    Suppression(
        "checkov",
        "CKV_AWS_2",
        "HttpListener",
        "no aws.certificate_arn: the load balancer serves HTTP only until one is set (then "
        "port 80 redirects to HTTPS on 443)",
        when="no-certificate",
    ),
    Suppression(
        "checkov",
        "CKV_AWS_103",
        "HttpListener",
        "no aws.certificate_arn: there is no TLS listener to set a TLS policy on yet",
        when="no-certificate",
    ),
    Suppression(
        "checkov",
        "CKV_AWS_18",
        "BackupBucket",
        "server access logs would need a second bucket (itself unlogged); CloudTrail data "
        "events are the better audit of a backup bucket",
    ),
    Suppression(
        "checkov",
        "CKV_AWS_26",
        "AlarmTopic",
        "CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key, "
        "and a customer-managed key costs a monthly fee; alarm messages hold no secrets",
    ),
)


def suppressions_for(logical_id: str, certificate: bool) -> list[Suppression]:
    out = []
    for s in SUPPRESSIONS:
        if s.when == "no-certificate" and certificate:
            continue
        if s.resource == logical_id or (
            s.resource.endswith("*") and logical_id.startswith(s.resource[:-1])
        ):
            out.append(s)
    return out


# --- the services the load balancer serves ----------------------------------------------------

_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def aws_services(stack: Stack) -> tuple[AwsService, ...]:
    """Every published HTTP service of `stack`, by name: one with a stable public port
    (x-conveyor.public_port) or a published `ports:` entry served in HTTP mode, health-checked
    at its probe's path (else `/`) at the pace of its healthcheck (within the ALB's bounds)."""
    oneshots = stack.oneshots()
    out = []
    for name in sorted(stack.services):
        if name in oneshots:
            continue
        service = stack.services[name]
        port = _published_http_port(service)
        if port is not None:
            out.append(_aws_service(service, port))
    return tuple(out)


def _published_http_port(service: Service) -> int | None:
    if service.routing.public_port is not None:
        return service.routing.public_port
    http = service.http_ports()
    for p in service.ports:
        if p.published is not None and p.protocol == "tcp" and p.target in http:
            return p.published
    return None


def _aws_service(service: Service, port: int) -> AwsService:
    path = service.routing.probe.path if service.routing.probe is not None else "/"
    check = service.healthcheck
    if check is None or check.test[:1] == ("NONE",):
        return AwsService(name=service.name, port=port, path=path)
    interval = _clamp(round(check.interval), 5, 300)
    return AwsService(
        name=service.name,
        port=port,
        path=path,
        interval=interval,
        timeout=_clamp(round(check.timeout), 2, min(120, interval - 1)),
        unhealthy=_clamp(check.retries, 2, 10),
    )


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def logical_name(service: str) -> str:
    """`catalog-api` -> `CatalogApi`: logical ids are letters and digits."""
    return "".join(part[:1].upper() + part[1:] for part in _ALNUM.split(service) if part)


# --- the template -----------------------------------------------------------------------------


def template_json(settings: AwsSettings, services: Iterable[AwsService], fleet: AwsFleet) -> str:
    """The template as JSON: keys sorted, so the same input gives byte-identical text."""
    template = render_template(settings, tuple(services), fleet)
    text: str = template.to_json(indent=2, sort_keys=True)
    return text + "\n"


def parameters_json(settings: AwsSettings) -> str:
    """The parameters file (`aws cloudformation ... --parameters file://parameters.json`)."""
    values = [{"ParameterKey": "HostImage", "ParameterValue": settings.hosts.image_parameter}]
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


def render_template(
    settings: AwsSettings, services: tuple[AwsService, ...], fleet: AwsFleet
) -> Template:
    """Raises AwsError when the settings and the services do not fit together."""
    return _Builder(settings, _checked(settings, services), fleet).build()


def _checked(settings: AwsSettings, services: tuple[AwsService, ...]) -> tuple[AwsService, ...]:
    names: dict[str, str] = {}
    for s in services:
        logical = logical_name(s.name)
        if not logical:
            raise AwsError(f"service {s.name!r}: its name has no letter or digit")
        if logical in names:
            raise AwsError(
                f"services {names[logical]!r} and {s.name!r} map to the same resource name "
                f"{logical!r}: rename one"
            )
        names[logical] = s.name
    wanted = settings.default_service
    if wanted is not None and wanted not in {s.name for s in services}:
        published = ", ".join(s.name for s in services) or "none"
        raise AwsError(
            f"aws.default_service: {wanted!r} is not a published HTTP service "
            f"(published: {published})"
        )
    return services


_USER_DATA = """#!/bin/bash
# Conveyor host bootstrap (docs/aws.md, "What the user data does").
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
# The data volume (the second disk) holds /var/lib/docker: images, containers, volumes.
root=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")
data=$(lsblk -dnpo NAME,TYPE | awk -v r="/dev/$root" '$2 == "disk" && $1 != r {print $1; exit}')
if [ -n "$data" ]; then
  blkid "$data" || mkfs.ext4 -L conveyor-data "$data"
  mkdir -p /var/lib/docker
  grep -q conveyor-data /etc/fstab ||
    echo 'LABEL=conveyor-data /var/lib/docker ext4 defaults,nofail 0 2' >> /etc/fstab
  mount -a
fi
mkdir -p /etc/conveyor /opt/conveyor/ansible
apt-get update -q
apt-get install -y -q ansible-core awscli python3
cat > /etc/conveyor/host.json <<EOF
{"stack": "${AWS::StackName}", "region": "${AWS::Region}",
 "backup_bucket": "${BackupBucket}", "backup_prefix": "%(prefix)s"}
EOF
# The playbook and roles `conveyor provision` runs, with this host's inventory, packed by
# `conveyor aws render`: the host configures itself with the same roles (the app role set).
base64 -d > /opt/conveyor/ansible.tar.gz <<'BUNDLE'
%(bundle)s
BUNDLE
tar -xzf /opt/conveyor/ansible.tar.gz -C /opt/conveyor/ansible
# The deploy user's public keys come from SSM Parameter Store (the instance role may read
# this one parameter), never from the user data. None yet: the host runs, unreachable by SSH.
(
  umask 077
  aws ssm get-parameter --region "${AWS::Region}" --name "%(keys)s" --with-decryption \\
    --query Parameter.Value --output text > /etc/conveyor/deploy-keys.txt ||
    : > /etc/conveyor/deploy-keys.txt
  python3 -c 'import json, sys; print(json.dumps({"conveyor_deploy_keys":
    [k.strip() for k in open(sys.argv[1]) if k.strip()]}))' /etc/conveyor/deploy-keys.txt \\
    > /etc/conveyor/deploy-keys.json
)
ANSIBLE_ROLES_PATH=/opt/conveyor/ansible/playbook/roles ansible-playbook -c local \\
  -i /opt/conveyor/ansible/inventory/conveyor.yml -e @/etc/conveyor/deploy-keys.json \\
  /opt/conveyor/ansible/playbook/site.yml
"""
USER_DATA_LIMIT = 16384  # bytes EC2 accepts, before base64
DEFAULT_DEPLOY_KEYS_PARAMETER = "/conveyor/${AWS::StackName}/deploy-keys"


def deploy_keys_parameter(settings: AwsSettings) -> str:
    """The SSM parameter's name, as a Sub string (the default names the stack)."""
    return settings.hosts.deploy_keys_parameter or DEFAULT_DEPLOY_KEYS_PARAMETER


def user_data(settings: AwsSettings, fleet: AwsFleet) -> str:
    """The launch template's user data, before CloudFormation's Sub. Raises AwsError
    without a playbook bundle, or when over EC2's limit."""
    if not fleet.playbook:
        raise AwsError("the hosts' user data needs the playbook bundle (AwsFleet.playbook)")
    lines = [fleet.playbook[i : i + 76] for i in range(0, len(fleet.playbook), 76)]
    text = _USER_DATA % {
        "prefix": settings.backup.prefix,
        "bundle": "\n".join(lines),
        "keys": deploy_keys_parameter(settings),
    }
    size = len(text.encode())
    if size > USER_DATA_LIMIT:
        raise AwsError(
            f"the hosts' user data is {size} bytes, over EC2's {USER_DATA_LIMIT}: the "
            "bundled playbook and inventory are too large"
        )
    return text


class _Builder:
    def __init__(
        self, settings: AwsSettings, services: tuple[AwsService, ...], fleet: AwsFleet
    ) -> None:
        self.s = settings
        self.services = services
        self.fleet = fleet
        self.t = Template()
        self.certificate = settings.certificate_arn is not None

    def add(self, resource: AWSObject) -> AWSObject:
        """Adds `resource` with the Metadata of its suppressions."""
        found = suppressions_for(resource.title, self.certificate)
        checkov = [{"id": s.rule, "comment": s.reason} for s in found if s.tool == "checkov"]
        if checkov:
            resource.Metadata = {"checkov": {"skip": checkov}}
        self.t.add_resource(resource)
        return resource

    def tags(self, name: str) -> Tags:
        return Tags(
            Name=Sub(f"${{AWS::StackName}}-{name}"), **{"conveyor:stack": Ref("AWS::StackName")}
        )

    def build(self) -> Template:
        t = self.t
        t.set_version("2010-09-09")
        t.set_description(
            "Conveyor: Docker hosts behind an Application Load Balancer over "
            f"{self.s.az_count} availability zones, with backups (generated by conveyor aws "
            "render; docs/aws.md)"
        )
        t.add_parameter(
            Parameter(
                "HostImage",
                Type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                Default=self.s.hosts.image_parameter,
                Description="The hosts' AMI, as a public SSM parameter (Debian 12 by default)",
            )
        )
        self.network()
        self.security_groups()
        self.backups()
        self.load_balancer()
        self.hosts()
        self.snapshots()
        self.alarms()
        self.outputs()
        return t

    # -- network --------------------------------------------------------------------------

    def network(self) -> None:
        s = self.s
        vpc = ipaddress.IPv4Network(s.vpc_cidr)
        bits = (2 * s.az_count - 1).bit_length()
        subnets = list(vpc.subnets(prefixlen_diff=bits))
        self.add(
            ec2.VPC(
                "Vpc",
                CidrBlock=s.vpc_cidr,
                EnableDnsHostnames=True,
                EnableDnsSupport=True,
                Tags=self.tags("vpc"),
            )
        )
        self.add(ec2.InternetGateway("InternetGateway", Tags=self.tags("igw")))
        self.add(
            ec2.VPCGatewayAttachment(
                "InternetGatewayAttachment",
                VpcId=Ref("Vpc"),
                InternetGatewayId=Ref("InternetGateway"),
            )
        )
        self.add(ec2.RouteTable("PublicRouteTable", VpcId=Ref("Vpc"), Tags=self.tags("public")))
        self.add(
            ec2.Route(
                "PublicDefaultRoute",
                DependsOn="InternetGatewayAttachment",
                RouteTableId=Ref("PublicRouteTable"),
                DestinationCidrBlock="0.0.0.0/0",
                GatewayId=Ref("InternetGateway"),
            )
        )
        for i in range(s.az_count):
            zone = Select(i, GetAZs(""))
            n = i + 1
            self.add(
                ec2.Subnet(
                    f"PublicSubnet{n}",
                    VpcId=Ref("Vpc"),
                    AvailabilityZone=zone,
                    CidrBlock=str(subnets[i]),
                    Tags=self.tags(f"public-{n}"),
                )
            )
            self.add(
                ec2.Subnet(
                    f"PrivateSubnet{n}",
                    VpcId=Ref("Vpc"),
                    AvailabilityZone=zone,
                    CidrBlock=str(subnets[s.az_count + i]),
                    Tags=self.tags(f"private-{n}"),
                )
            )
            self.add(
                ec2.SubnetRouteTableAssociation(
                    f"PublicSubnet{n}RouteTable",
                    SubnetId=Ref(f"PublicSubnet{n}"),
                    RouteTableId=Ref("PublicRouteTable"),
                )
            )
            nat = n if s.nat == "per_az" else 1
            if s.nat == "per_az" or n == 1:
                self.add(
                    ec2.EIP(
                        f"NatAddress{n}",
                        DependsOn="InternetGatewayAttachment",
                        Domain="vpc",
                        Tags=self.tags(f"nat-{n}"),
                    )
                )
                self.add(
                    ec2.NatGateway(
                        f"NatGateway{n}",
                        AllocationId=GetAtt(f"NatAddress{n}", "AllocationId"),
                        SubnetId=Ref(f"PublicSubnet{n}"),
                        Tags=self.tags(f"nat-{n}"),
                    )
                )
            self.add(
                ec2.RouteTable(
                    f"PrivateRouteTable{n}", VpcId=Ref("Vpc"), Tags=self.tags(f"private-{n}")
                )
            )
            self.add(
                ec2.Route(
                    f"PrivateDefaultRoute{n}",
                    RouteTableId=Ref(f"PrivateRouteTable{n}"),
                    DestinationCidrBlock="0.0.0.0/0",
                    NatGatewayId=Ref(f"NatGateway{nat}"),
                )
            )
            self.add(
                ec2.SubnetRouteTableAssociation(
                    f"PrivateSubnet{n}RouteTable",
                    SubnetId=Ref(f"PrivateSubnet{n}"),
                    RouteTableId=Ref(f"PrivateRouteTable{n}"),
                )
            )

    def zones(self, kind: str) -> list[Ref]:
        return [Ref(f"{kind}Subnet{n}") for n in range(1, self.s.az_count + 1)]

    # -- security groups ------------------------------------------------------------------

    def listener_ports(self) -> list[int]:
        return [80, 443] if self.certificate else [80]

    def security_groups(self) -> None:
        self.add(
            ec2.SecurityGroup(
                "LoadBalancerSecurityGroup",
                GroupDescription="Conveyor load balancer: HTTP(S) from the internet",
                VpcId=Ref("Vpc"),
                SecurityGroupIngress=[
                    ec2.SecurityGroupRule(
                        IpProtocol="tcp",
                        FromPort=port,
                        ToPort=port,
                        CidrIp="0.0.0.0/0",
                        Description=f"HTTP{'S' if port == 443 else ''} from the internet",
                    )
                    for port in self.listener_ports()
                ],
                # Egress rules are separate resources below (to the hosts' group only).
                SecurityGroupEgress=[
                    ec2.SecurityGroupRule(
                        IpProtocol="-1",
                        CidrIp="127.0.0.1/32",
                        Description="no egress but the rules to the hosts",
                    )
                ],
                Tags=self.tags("alb"),
            )
        )
        rules = [
            ec2.SecurityGroupRule(
                IpProtocol="tcp",
                FromPort=port,
                ToPort=port,
                CidrIp="0.0.0.0/0",
                Description=f"{'HTTPS' if port == 443 else 'HTTP'} out: packages and images",
            )
            for port in (80, 443)
        ]
        ingress = []
        if self.s.hosts.ssh_cidr is not None:
            ingress.append(
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=22,
                    ToPort=22,
                    CidrIp=self.s.hosts.ssh_cidr,
                    Description="SSH from aws.hosts.ssh_cidr",
                )
            )
        host_group: dict[str, Any] = {}
        if ingress:
            host_group["SecurityGroupIngress"] = ingress
        self.add(
            ec2.SecurityGroup(
                "HostSecurityGroup",
                GroupDescription="Conveyor hosts: service ports from the load balancer only",
                VpcId=Ref("Vpc"),
                SecurityGroupEgress=rules,
                Tags=self.tags("hosts"),
                **host_group,
            )
        )
        for port in sorted({svc.port for svc in self.services}):
            self.add(
                ec2.SecurityGroupIngress(
                    f"HostIngress{port}",
                    GroupId=Ref("HostSecurityGroup"),
                    IpProtocol="tcp",
                    FromPort=port,
                    ToPort=port,
                    SourceSecurityGroupId=Ref("LoadBalancerSecurityGroup"),
                    Description=f"port {port} from the load balancer",
                )
            )
            self.add(
                ec2.SecurityGroupEgress(
                    f"LoadBalancerEgress{port}",
                    GroupId=Ref("LoadBalancerSecurityGroup"),
                    IpProtocol="tcp",
                    FromPort=port,
                    ToPort=port,
                    DestinationSecurityGroupId=Ref("HostSecurityGroup"),
                    Description=f"port {port} to the hosts",
                )
            )
        self.between_hosts()

    def between_hosts(self) -> None:
        """App hosts reach each other on the fleet's ports (published and host-networking
        service ports, and the ephemeral range replicas are published on for other hosts'
        HAProxies), from the hosts' own group only: nothing else gets these ports."""
        ranges = [(p, p, f"fleet port {p}") for p in sorted(set(self.fleet.ports))]
        low, high = REPLICA_PORTS
        ranges.append((low, high, "replicas published for the other hosts"))
        for start, end, what in ranges:
            name = f"{start}" if start == end else f"{start}To{end}"
            for kind, direction in (("Ingress", "from"), ("Egress", "to")):
                peer = (
                    "SourceSecurityGroupId" if kind == "Ingress" else "DestinationSecurityGroupId"
                )
                rule = ec2.SecurityGroupIngress if kind == "Ingress" else ec2.SecurityGroupEgress
                self.add(
                    rule(
                        f"HostFleet{kind}{name}",
                        GroupId=Ref("HostSecurityGroup"),
                        IpProtocol="tcp",
                        FromPort=start,
                        ToPort=end,
                        Description=f"{what} {direction} the other hosts",
                        **{peer: Ref("HostSecurityGroup")},
                    )
                )

    # -- backups --------------------------------------------------------------------------

    def backups(self) -> None:
        b = self.s.backup
        named: dict[str, Any] = {"BucketName": b.bucket_name} if b.bucket_name else {}
        bucket = s3.Bucket(
            "BackupBucket",
            DeletionPolicy="Retain",  # backups outlive the stack
            UpdateReplacePolicy="Retain",
            VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
            BucketEncryption=s3.BucketEncryption(
                ServerSideEncryptionConfiguration=[
                    s3.ServerSideEncryptionRule(
                        ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(
                            SSEAlgorithm="aws:kms"  # the account's AWS-managed S3 key
                        ),
                        BucketKeyEnabled=True,  # fewer KMS requests, so a lower KMS bill
                    )
                ]
            ),
            PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
                BlockPublicAcls=True,
                BlockPublicPolicy=True,
                IgnorePublicAcls=True,
                RestrictPublicBuckets=True,
            ),
            OwnershipControls=s3.OwnershipControls(
                Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
            ),
            LifecycleConfiguration=s3.LifecycleConfiguration(
                Rules=[
                    s3.LifecycleRule(
                        Id="retention",
                        Status="Enabled",
                        Prefix=b.prefix,
                        ExpirationInDays=b.retention_days,
                        NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(
                            NoncurrentDays=b.noncurrent_days
                        ),
                        AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(
                            DaysAfterInitiation=7
                        ),
                    )
                ]
            ),
            Tags=self.tags("backups"),
            **named,
        )
        self.add(bucket)
        self.add(
            s3.BucketPolicy(
                "BackupBucketPolicy",
                Bucket=Ref("BackupBucket"),
                PolicyDocument={
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "TlsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [
                                GetAtt("BackupBucket", "Arn"),
                                Sub("${BackupBucket.Arn}/*"),
                            ],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                },
            )
        )

    # -- load balancer --------------------------------------------------------------------

    def default_service(self) -> AwsService | None:
        if not self.services:
            return None
        wanted = self.s.default_service
        return next((s for s in self.services if s.name == wanted), self.services[0])

    def load_balancer(self) -> None:
        self.add(
            elb.LoadBalancer(
                "LoadBalancer",
                Type="application",
                Scheme="internet-facing",
                Subnets=self.zones("Public"),
                SecurityGroups=[Ref("LoadBalancerSecurityGroup")],
                LoadBalancerAttributes=[
                    elb.LoadBalancerAttributes(
                        Key="deletion_protection.enabled",
                        Value=str(self.s.deletion_protection).lower(),
                    ),
                    elb.LoadBalancerAttributes(
                        Key="routing.http.drop_invalid_header_fields.enabled", Value="true"
                    ),
                ],
                Tags=self.tags("alb"),
            )
        )
        for svc in self.services:
            self.add(
                elb.TargetGroup(
                    f"TargetGroup{logical_name(svc.name)}",
                    VpcId=Ref("Vpc"),
                    Protocol="HTTP",
                    Port=svc.port,
                    TargetType="instance",
                    HealthCheckEnabled=True,
                    HealthCheckProtocol="HTTP",
                    HealthCheckPath=svc.path,
                    HealthCheckIntervalSeconds=svc.interval,
                    HealthCheckTimeoutSeconds=svc.timeout,
                    HealthyThresholdCount=svc.healthy,
                    UnhealthyThresholdCount=svc.unhealthy,
                    Matcher=elb.Matcher(HttpCode="200-399"),
                    TargetGroupAttributes=[
                        # Conveyor's hosts drain a replica before stopping it; 30 s covers it.
                        elb.TargetGroupAttribute(
                            Key="deregistration_delay.timeout_seconds", Value="30"
                        )
                    ],
                    Tags=self.tags(f"tg-{svc.name}"),
                )
            )
        default = self.default_service()
        if self.certificate:
            self.add(
                elb.Listener(
                    "HttpListener",
                    LoadBalancerArn=Ref("LoadBalancer"),
                    Port=80,
                    Protocol="HTTP",
                    DefaultActions=[
                        elb.Action(
                            Type="redirect",
                            RedirectConfig=elb.RedirectConfig(
                                Protocol="HTTPS", Port="443", StatusCode="HTTP_301"
                            ),
                        )
                    ],
                )
            )
            self.add(
                elb.Listener(
                    "HttpsListener",
                    LoadBalancerArn=Ref("LoadBalancer"),
                    Port=443,
                    Protocol="HTTPS",
                    SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
                    Certificates=[elb.Certificate(CertificateArn=self.s.certificate_arn)],
                    DefaultActions=[self.default_action(default)],
                )
            )
            serving = "HttpsListener"
        else:
            self.add(
                elb.Listener(
                    "HttpListener",
                    LoadBalancerArn=Ref("LoadBalancer"),
                    Port=80,
                    Protocol="HTTP",
                    DefaultActions=[self.default_action(default)],
                )
            )
            serving = "HttpListener"
        others = [s for s in self.services if s is not default]
        for priority, svc in enumerate(others, start=1):
            host = f"{svc.name}.{self.s.domain}" if self.s.domain else f"{svc.name}.*"
            self.add(
                elb.ListenerRule(
                    f"Rule{logical_name(svc.name)}",
                    ListenerArn=Ref(serving),
                    Priority=priority * 10,
                    Conditions=[
                        elb.Condition(
                            Field="host-header",
                            HostHeaderConfig=elb.HostHeaderConfig(Values=[host]),
                        )
                    ],
                    Actions=[
                        elb.ListenerRuleAction(
                            Type="forward",
                            TargetGroupArn=Ref(f"TargetGroup{logical_name(svc.name)}"),
                        )
                    ],
                )
            )

    def default_action(self, default: AwsService | None) -> elb.Action:
        if default is None:
            return elb.Action(
                Type="fixed-response",
                FixedResponseConfig=elb.FixedResponseConfig(
                    StatusCode="404",
                    ContentType="text/plain",
                    MessageBody="no published service",
                ),
            )
        return elb.Action(
            Type="forward", TargetGroupArn=Ref(f"TargetGroup{logical_name(default.name)}")
        )

    # -- hosts ----------------------------------------------------------------------------

    def hosts(self) -> None:
        h = self.s.hosts
        b = self.s.backup
        bucket = GetAtt("BackupBucket", "Arn")
        self.add(
            iam.Role(
                "HostRole",
                AssumeRolePolicyDocument=_assume("ec2.amazonaws.com"),
                # Session Manager: a shell on the hosts without opening SSH to anyone.
                ManagedPolicyArns=[
                    Sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")
                ],
                Policies=[
                    iam.Policy(
                        PolicyName="backups",
                        PolicyDocument={
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "ListBackups",
                                    "Effect": "Allow",
                                    "Action": "s3:ListBucket",
                                    "Resource": bucket,
                                    "Condition": {"StringLike": {"s3:prefix": f"{b.prefix}*"}},
                                },
                                {
                                    "Sid": "ReadWriteBackups",
                                    "Effect": "Allow",
                                    "Action": ["s3:GetObject", "s3:PutObject"],
                                    "Resource": Sub(f"${{BackupBucket.Arn}}/{b.prefix}*"),
                                },
                            ],
                        },
                    ),
                    # The deploy user's keys, read at boot: this one parameter, nothing else.
                    iam.Policy(
                        PolicyName="deploy-keys",
                        PolicyDocument={
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "ReadDeployKeys",
                                    "Effect": "Allow",
                                    "Action": "ssm:GetParameter",
                                    "Resource": Sub(
                                        "arn:${AWS::Partition}:ssm:${AWS::Region}:"
                                        "${AWS::AccountId}:parameter/"
                                        + deploy_keys_parameter(self.s).lstrip("/")
                                    ),
                                }
                            ],
                        },
                    ),
                ],
                Tags=self.tags("host"),
            )
        )
        self.add(iam.InstanceProfile("HostInstanceProfile", Roles=[Ref("HostRole")]))
        data: dict[str, Any] = {}
        if h.key_name is not None:
            data["KeyName"] = h.key_name
        self.add(
            ec2.LaunchTemplate(
                "HostLaunchTemplate",
                LaunchTemplateData=ec2.LaunchTemplateData(
                    ImageId=Ref("HostImage"),
                    InstanceType=h.instance_type,
                    IamInstanceProfile=ec2.IamInstanceProfile(
                        Arn=GetAtt("HostInstanceProfile", "Arn")
                    ),
                    SecurityGroupIds=[Ref("HostSecurityGroup")],
                    MetadataOptions=ec2.MetadataOptions(
                        HttpTokens="required",  # IMDSv2 only
                        HttpPutResponseHopLimit=1,  # containers do not reach the host's role
                        HttpEndpoint="enabled",
                    ),
                    BlockDeviceMappings=[
                        _volume("/dev/xvda", h.root_volume_gb),
                        _volume("/dev/xvdf", h.data_volume_gb),
                    ],
                    UserData=Base64(Sub(user_data(self.s, self.fleet))),
                    TagSpecifications=[
                        ec2.TagSpecifications(ResourceType=kind, Tags=self.tags("host"))
                        for kind in ("instance", "volume")
                    ],
                    **data,
                ),
            )
        )
        groups = [Ref(f"TargetGroup{logical_name(s.name)}") for s in self.services]
        extra: dict[str, Any] = {"TargetGroupARNs": groups} if groups else {}
        self.add(
            asg.AutoScalingGroup(
                HOST_GROUP,
                VPCZoneIdentifier=self.zones("Private"),
                LaunchTemplate=asg.LaunchTemplateSpecification(
                    LaunchTemplateId=Ref("HostLaunchTemplate"),
                    Version=GetAtt("HostLaunchTemplate", "LatestVersionNumber"),
                ),
                MinSize=str(h.min),
                MaxSize=str(h.max),
                DesiredCapacity=str(h.desired),
                # EC2 status checks replace a broken instance; the load balancer's checks only
                # take a host out of rotation. With ELB checks the group would replace a host
                # that serves nothing yet (Conveyor places replicas after it boots) in a loop.
                HealthCheckType="EC2",
                HealthCheckGracePeriod=300,
                UpdatePolicy=UpdatePolicy(
                    AutoScalingRollingUpdate=AutoScalingRollingUpdate(
                        # below MaxSize, or CloudFormation refuses the update (min == max)
                        MinInstancesInService=str(max(0, min(h.min, h.max - 1))),
                        MaxBatchSize="1",
                        PauseTime="PT5M",
                    )
                ),
                Tags=asg.Tags(**{"conveyor:stack": Ref("AWS::StackName")}),
                **extra,
            )
        )
        self.add(
            asg.ScalingPolicy(
                "HostCpuScaling",
                AutoScalingGroupName=Ref("HostGroup"),
                PolicyType="TargetTrackingScaling",
                TargetTrackingConfiguration=asg.TargetTrackingConfiguration(
                    PredefinedMetricSpecification=asg.PredefinedMetricSpecification(
                        PredefinedMetricType="ASGAverageCPUUtilization"
                    ),
                    TargetValue=60.0,
                ),
            )
        )

    # -- snapshots ------------------------------------------------------------------------

    def snapshots(self) -> None:
        snap = self.s.snapshots
        if not snap.enabled:
            return
        self.add(
            iam.Role(
                "SnapshotRole",
                AssumeRolePolicyDocument=_assume("dlm.amazonaws.com"),
                # AWS's policy for DLM: create, tag and delete snapshots; nothing else.
                ManagedPolicyArns=[
                    Sub(
                        "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                        "AWSDataLifecycleManagerServiceRole"
                    )
                ],
                Tags=self.tags("snapshots"),
            )
        )
        self.add(
            dlm.LifecyclePolicy(
                "SnapshotPolicy",
                Description="Conveyor host volume snapshots",
                State="ENABLED",
                ExecutionRoleArn=GetAtt("SnapshotRole", "Arn"),
                PolicyDetails=dlm.PolicyDetails(
                    PolicyType="EBS_SNAPSHOT_MANAGEMENT",
                    ResourceTypes=["VOLUME"],
                    TargetTags=[{"Key": "conveyor:stack", "Value": Ref("AWS::StackName")}],
                    Schedules=[
                        dlm.Schedule(
                            Name="conveyor",
                            CopyTags=True,
                            CreateRule=dlm.CreateRule(
                                Interval=snap.interval_hours,
                                IntervalUnit="HOURS",
                                Times=[snap.time],
                            ),
                            RetainRule=dlm.RetainRule(Count=snap.retain),
                        )
                    ],
                ),
            )
        )

    # -- alarms ---------------------------------------------------------------------------

    def alarm_actions(self) -> list[Any]:
        a = self.s.alarms
        actions: list[Any] = []
        if a.email is not None:
            actions.append(Ref("AlarmTopic"))
        if a.sns_topic_arn is not None:
            actions.append(a.sns_topic_arn)
        return actions

    def alarms(self) -> None:
        a = self.s.alarms
        if a.email is not None:
            self.add(sns.Topic("AlarmTopic", Tags=self.tags("alarms")))
            self.add(
                sns.SubscriptionResource(
                    "AlarmEmail", TopicArn=Ref("AlarmTopic"), Protocol="email", Endpoint=a.email
                )
            )
        actions = self.alarm_actions()
        notify: dict[str, Any] = {"AlarmActions": actions, "OKActions": actions} if actions else {}
        self.add(
            cloudwatch.Alarm(
                "HostCpuAlarm",
                AlarmDescription=f"Hosts' average CPU above {a.cpu_percent}% for 10 minutes",
                Namespace="AWS/EC2",
                MetricName="CPUUtilization",
                Dimensions=[
                    cloudwatch.MetricDimension(Name="AutoScalingGroupName", Value=Ref("HostGroup"))
                ],
                Statistic="Average",
                Period=300,
                EvaluationPeriods=2,
                Threshold=a.cpu_percent,
                ComparisonOperator="GreaterThanThreshold",
                **notify,
            )
        )
        if not self.services:
            return
        self.add(
            cloudwatch.Alarm(
                "Http5xxAlarm",
                AlarmDescription=f"More than {a.http_5xx} 5xx answers from the hosts in 5 minutes",
                Namespace="AWS/ApplicationELB",
                MetricName="HTTPCode_Target_5XX_Count",
                Dimensions=[
                    cloudwatch.MetricDimension(
                        Name="LoadBalancer", Value=GetAtt("LoadBalancer", "LoadBalancerFullName")
                    )
                ],
                Statistic="Sum",
                Period=300,
                EvaluationPeriods=1,
                Threshold=a.http_5xx,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                **notify,
            )
        )
        for svc in self.services:
            name = logical_name(svc.name)
            self.add(
                cloudwatch.Alarm(
                    f"UnhealthyHosts{name}",
                    AlarmDescription=f"A host fails {svc.name}'s health check",
                    Namespace="AWS/ApplicationELB",
                    MetricName="UnHealthyHostCount",
                    Dimensions=[
                        cloudwatch.MetricDimension(
                            Name="LoadBalancer",
                            Value=GetAtt("LoadBalancer", "LoadBalancerFullName"),
                        ),
                        cloudwatch.MetricDimension(
                            Name="TargetGroup",
                            Value=GetAtt(f"TargetGroup{name}", "TargetGroupFullName"),
                        ),
                    ],
                    Statistic="Maximum",
                    Period=60,
                    EvaluationPeriods=2,
                    Threshold=0,
                    ComparisonOperator="GreaterThanThreshold",
                    TreatMissingData="notBreaching",
                    **notify,
                )
            )

    # -- outputs --------------------------------------------------------------------------

    def outputs(self) -> None:
        values: list[tuple[str, str, Any]] = [
            ("LoadBalancerDns", "The load balancer's DNS name", GetAtt("LoadBalancer", "DNSName")),
            ("VpcId", "The VPC", Ref("Vpc")),
            ("BackupBucketName", "The backup bucket", Ref("BackupBucket")),
            ("HostGroupName", "The hosts' Auto Scaling group", Ref("HostGroup")),
            ("HostRoleArn", "The hosts' IAM role", GetAtt("HostRole", "Arn")),
        ]
        for name, description, value in values:
            self.t.add_output(
                Output(
                    name,
                    Description=description,
                    Value=value,
                    Export=Export(Sub(f"${{AWS::StackName}}-{name}")),
                )
            )


def _assume(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def _volume(device: str, size_gb: int) -> ec2.LaunchTemplateBlockDeviceMapping:
    return ec2.LaunchTemplateBlockDeviceMapping(
        DeviceName=device,
        Ebs=ec2.EBSBlockDevice(
            VolumeSize=size_gb, VolumeType="gp3", Encrypted=True, DeleteOnTermination=True
        ),
    )
