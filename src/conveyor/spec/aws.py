"""The `aws:` section of conveyor.yaml -> model.AwsSettings (docs/aws.md).

    aws:
      stack_name: shop-prod           # default conveyor-<project>
      region: eu-west-1               # default us-east-1
      az_count: 3                     # 2-6 zones, each a public and a private subnet
      vpc_cidr: 10.20.0.0/16          # /16 to /24; split into one /(n+4) per subnet
      nat: per_az                     # or single (one shared NAT gateway: cheaper, less HA)
      certificate_arn: arn:aws:acm:...  # HTTPS on 443, port 80 redirects to it
      domain: shop.example.com        # other services at <service>.shop.example.com
      default_service: gateway        # what the load balancer serves by default
      deletion_protection: true
      hosts: {instance_type: t3.small, min: 2, max: 4, desired: 2,
              root_volume_gb: 20, data_volume_gb: 50, ssh_cidr: 203.0.113.0/24, key_name: ops,
              address: private, ssh_user: deploy, ssh_key: keys/deploy}   # hosts_from: aws
      backup: {bucket_name: shop-backups, retention_days: 30, noncurrent_days: 7, prefix: backups/}
      snapshots: {enabled: true, interval_hours: 24, time: "03:00", retain: 7}
      alarms: {email: ops@example.com, sns_topic_arn: arn:aws:sns:..., cpu_percent: 80,
               http_5xx: 10}

Problems are recorded on the Context (file, line, field), like every other section, so they
are reported together: `conveyor.yaml:4: aws.az_count: must be between 2 and 6, got 9`.
`load_aws_settings` reads only this section of a file, for `conveyor aws` in a project that
has no environments (no Conveyor server) yet.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from conveyor.errors import SpecError
from conveyor.model.aws import (
    AlarmSettings,
    AwsSettings,
    BackupSettings,
    HostAddress,
    HostsSettings,
    NatMode,
    SnapshotSettings,
)
from conveyor.spec.context import Context, raise_errors
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.values import describe, one_of, to_bool, to_int
from conveyor.spec.yamlpos import YamlPath, load_yaml

T = TypeVar("T")

KEYS = (
    "stack_name",
    "region",
    "az_count",
    "vpc_cidr",
    "nat",
    "certificate_arn",
    "domain",
    "default_service",
    "deletion_protection",
    "hosts",
    "backup",
    "snapshots",
    "alarms",
)
HOST_KEYS = (
    "instance_type",
    "min",
    "max",
    "desired",
    "root_volume_gb",
    "data_volume_gb",
    "ssh_cidr",
    "key_name",
    "image_parameter",
    "deploy_keys_parameter",
    "address",
    "ssh_user",
    "ssh_key",
)
BACKUP_KEYS = ("bucket_name", "retention_days", "noncurrent_days", "prefix")
SNAPSHOT_KEYS = ("enabled", "interval_hours", "time", "retain")
ALARM_KEYS = ("email", "sns_topic_arn", "cpu_percent", "http_5xx")
DLM_INTERVALS = (1, 2, 3, 4, 6, 8, 12, 24)  # what Data Lifecycle Manager accepts

_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d")
_STACK = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
# S3's rules for new buckets: 3-63 of a-z 0-9 . -, a letter or digit at both ends.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}")
_SERVICE = re.compile(r"[a-zA-Z0-9._-]+")
_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:\S+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_KEY_NAME = re.compile(r"[ -~]{1,255}")
_PREFIX = re.compile(r"([A-Za-z0-9!_.*'()-]+/)+")
_SSM_PATH = re.compile(r"/[A-Za-z0-9_./-]+")
_USER = re.compile(r"[a-z_][a-z0-9_-]*[$]?")  # as spec.fleet's hosts' `user`


def aws_settings(ctx: Context, path: YamlPath, raw: Any) -> AwsSettings:
    """`raw` (the value at `path`, e.g. `("aws",)`) as AwsSettings; an absent section gives
    the defaults."""
    defaults = AwsSettings()
    if raw is None or mapping(ctx, path, raw) is None:
        return defaults
    known_keys(ctx, path, raw, KEYS, listed=False)
    field = _Fields(ctx, path, raw)
    az_count = field.int_between("az_count", defaults.az_count, 2, 6)
    return AwsSettings(
        stack_name=field.matching("stack_name", _STACK, "letters, digits and '-', from a letter"),
        region=field.matching("region", _REGION, "a region such as eu-west-1") or defaults.region,
        az_count=az_count,
        vpc_cidr=_cidr(ctx, path, raw, defaults.vpc_cidr, az_count),
        nat=field.convert("nat", _nat, defaults.nat),
        certificate_arn=field.matching("certificate_arn", _ARN, "an ACM certificate's ARN"),
        domain=field.matching("domain", _DOMAIN, "a lower-case DNS name"),
        default_service=field.matching("default_service", _SERVICE, "a service's name"),
        deletion_protection=field.convert(
            "deletion_protection", to_bool, defaults.deletion_protection
        ),
        hosts=_hosts(ctx, (*path, "hosts"), raw.get("hosts")),
        backup=_backup(ctx, (*path, "backup"), raw.get("backup")),
        snapshots=_snapshots(ctx, (*path, "snapshots"), raw.get("snapshots")),
        alarms=_alarms(ctx, (*path, "alarms"), raw.get("alarms")),
    )


def load_aws_settings(path: Path, name: str | None = None) -> AwsSettings:
    """The `aws:` section of the conveyor.yaml at `path` (the defaults when the file or the
    section is absent); the file's other sections are not checked here. Raises SpecError or
    SpecErrors naming `name` (default: `path` as given)."""
    file = str(path) if name is None else name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AwsSettings()
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(file, None, "", f"cannot read the file: {e}") from None
    return parse_aws_settings(text, file, path.parent)


def parse_aws_settings(
    text: str, file: str = "conveyor.yaml", base: Path | None = None
) -> AwsSettings:
    """`base`: the directory paths in the section (`hosts.ssh_key`) are relative to."""
    doc = load_yaml(text, file, version="1.2")
    ctx = Context(doc=doc, file=file, base=base or Path("."), environ={})
    if doc.data is None:
        return AwsSettings()
    root = mapping(ctx, (), doc.data)
    settings = AwsSettings() if root is None else aws_settings(ctx, ("aws",), root.get("aws"))
    raise_errors(ctx.errors)
    return settings


# --- parts -----------------------------------------------------------------------------------


class _Fields:
    """Reads the keys of one mapping, recording each problem at its key's line."""

    def __init__(self, ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> None:
        self.ctx, self.path, self.raw = ctx, path, raw

    def convert(self, key: str, convert: Callable[[Any], T], default: T) -> T:
        return self.ctx.optional(self.raw, key, self.path, convert, default)

    def int_between(self, key: str, default: int, low: int, high: int) -> int:
        value = self.convert(key, to_int, default)
        if not low <= value <= high:
            self.ctx.error((*self.path, key), f"must be between {low} and {high}, got {value}")
            return default
        return value

    def matching(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        self.ctx.error((*self.path, key), f"must be {what}, got {describe(value)}")
        return None


def _section(ctx: Context, path: YamlPath, raw: Any, keys: tuple[str, ...]) -> _Fields | None:
    if raw is None or mapping(ctx, path, raw) is None:
        return None
    known_keys(ctx, path, raw, keys)
    return _Fields(ctx, path, raw)


def _cidr(ctx: Context, path: YamlPath, raw: Mapping[str, Any], default: str, az_count: int) -> str:
    value = raw.get("vpc_cidr")
    if value is None:
        return default
    where = (*path, "vpc_cidr")
    try:
        network = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        ctx.error(where, f"must be an IPv4 network such as 10.0.0.0/16, got {describe(value)}")
        return default
    # AWS allows VPCs from /16 to /28; each of the 2*az_count subnets needs at least a /28.
    if not 16 <= network.prefixlen <= 28 - _subnet_bits(az_count):
        ctx.error(
            where,
            f"must be from /16 to /{28 - _subnet_bits(az_count)} for {2 * az_count} subnets, "
            f"got /{network.prefixlen}",
        )
        return default
    return str(network)


def _nat(value: Any) -> NatMode:
    return "single" if one_of(value, ("per_az", "single")) == "single" else "per_az"


def _subnet_bits(az_count: int) -> int:
    """Bits taken from the VPC's range for 2*az_count subnets (a public, a private per zone)."""
    return (2 * az_count - 1).bit_length()


def _ssh_cidr(value: Any) -> str:
    try:
        network = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        raise ValueError(
            f"must be an IPv4 network such as 203.0.113.0/24, got {describe(value)}"
        ) from None
    if network.prefixlen == 0:
        raise ValueError("must not be 0.0.0.0/0: SSH would be open to the internet")
    return str(network)


def _hosts(ctx: Context, path: YamlPath, raw: Any) -> HostsSettings:
    defaults = HostsSettings()
    field = _section(ctx, path, raw, HOST_KEYS)
    if field is None:
        return defaults
    low = field.int_between("min", defaults.min, 0, 100)
    high = field.int_between("max", defaults.max, 1, 100)
    desired = field.int_between("desired", max(low, min(defaults.desired, high)), 0, 100)
    if low > high:
        ctx.error((*path, "min"), f"must not exceed max ({high}), got {low}")
    elif not low <= desired <= high:
        ctx.error(
            (*path, "desired"), f"must be between min ({low}) and max ({high}), got {desired}"
        )
    return HostsSettings(
        instance_type=field.matching("instance_type", _INSTANCE_TYPE, "an EC2 instance type")
        or defaults.instance_type,
        min=low,
        max=high,
        desired=desired,
        root_volume_gb=field.int_between("root_volume_gb", defaults.root_volume_gb, 8, 16384),
        data_volume_gb=field.int_between("data_volume_gb", defaults.data_volume_gb, 1, 16384),
        ssh_cidr=field.convert("ssh_cidr", _ssh_cidr, None),
        key_name=field.matching("key_name", _KEY_NAME, "an EC2 key pair's name"),
        image_parameter=field.matching("image_parameter", _SSM_PATH, "an SSM parameter path")
        or defaults.image_parameter,
        deploy_keys_parameter=field.matching(
            "deploy_keys_parameter", _SSM_PATH, "an SSM parameter path"
        ),
        address=field.convert("address", _address, defaults.address),
        ssh_user=field.matching("ssh_user", _USER, "a user name such as deploy")
        or defaults.ssh_user,
        ssh_key=_ssh_key(ctx, path, raw),
    )


def _address(value: Any) -> HostAddress:
    return "public" if one_of(value, ("private", "public")) == "public" else "private"


def _ssh_key(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> str | None:
    """The private key file the controller logs in to the hosts with, relative to the file."""
    value = raw.get("ssh_key")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        ctx.error((*path, "ssh_key"), f"must be a private key file's path, got {describe(value)}")
        return None
    return str(ctx.resolve(value))


def _backup(ctx: Context, path: YamlPath, raw: Any) -> BackupSettings:
    defaults = BackupSettings()
    field = _section(ctx, path, raw, BACKUP_KEYS)
    if field is None:
        return defaults
    bucket = field.matching(
        "bucket_name", _BUCKET, "a bucket name (3-63 lower-case letters, digits, '.', '-')"
    )
    if bucket is not None and (".." in bucket or re.fullmatch(r"[\d.]+", bucket)):
        ctx.error(
            (*path, "bucket_name"), f"must not look like an IP address or hold '..': {bucket!r}"
        )
    return BackupSettings(
        bucket_name=bucket,
        retention_days=field.int_between("retention_days", defaults.retention_days, 1, 3650),
        noncurrent_days=field.int_between("noncurrent_days", defaults.noncurrent_days, 1, 3650),
        prefix=field.matching("prefix", _PREFIX, "a key prefix ending in '/', e.g. backups/")
        or defaults.prefix,
    )


def _snapshots(ctx: Context, path: YamlPath, raw: Any) -> SnapshotSettings:
    defaults = SnapshotSettings()
    field = _section(ctx, path, raw, SNAPSHOT_KEYS)
    if field is None:
        return defaults
    interval = field.convert("interval_hours", to_int, defaults.interval_hours)
    if interval not in DLM_INTERVALS:
        listed = ", ".join(str(i) for i in DLM_INTERVALS)
        ctx.error((*path, "interval_hours"), f"must be one of {listed}, got {interval}")
        interval = defaults.interval_hours
    return SnapshotSettings(
        enabled=field.convert("enabled", to_bool, defaults.enabled),
        interval_hours=interval,
        time=field.matching("time", _TIME, "a UTC time as HH:MM, quoted") or defaults.time,
        retain=field.int_between("retain", defaults.retain, 1, 1000),
    )


def _alarms(ctx: Context, path: YamlPath, raw: Any) -> AlarmSettings:
    defaults = AlarmSettings()
    field = _section(ctx, path, raw, ALARM_KEYS)
    if field is None:
        return defaults
    return AlarmSettings(
        email=field.matching("email", _EMAIL, "an email address"),
        sns_topic_arn=field.matching("sns_topic_arn", _ARN, "an SNS topic's ARN"),
        cpu_percent=field.int_between("cpu_percent", defaults.cpu_percent, 1, 100),
        http_5xx=field.int_between("http_5xx", defaults.http_5xx, 1, 1_000_000),
    )
