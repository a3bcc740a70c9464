"""The AWS stack's Auto Scaling group as the fleet (docs/aws.md, "The group's hosts as the
fleet"): conveyor.yaml's `hosts_from: aws`, and `conveyor aws hosts`.

    listing = aws_hosts(AwsStack(compose_files, conveyor_file, environ, cwd))
        every instance, and the host it is (or why not)
    source = aws_fleet_source(conveyor_file, name, project, environ)
        what Project.engine() drives: learned every 30 s, one per file in a process

The endpoint is AWS unless AWS_ENDPOINT_URL (in the environment given) points elsewhere: the
tests use moto's server on 127.0.0.1. Credentials come from boto3's usual chain.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.aws import AwsStack, stack_name_of
from conveyor.app.fleet_file import Stamp, file_stamp
from conveyor.deploy.fleet_source import LEARN_EVERY, LearnedFleet
from conveyor.model.aws import AwsInstance, AwsSettings
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.plan.aws_fleet import aws_fleet, instance_host, left_out
from conveyor.provision.aws.hosts import AutoScalingHosts
from conveyor.spec.aws import load_aws_settings


@dataclass(frozen=True)
class AwsHostRow:
    instance: AwsInstance
    host: FleetHost | None  # the fleet host it is; None: not one (`left_out` says why)
    left_out: str | None = None


@dataclass(frozen=True)
class AwsHosts:
    """What the fleet would be: every instance of the stack's group."""

    stack_name: str
    region: str
    rows: tuple[AwsHostRow, ...]

    @property
    def fleet(self) -> tuple[FleetHost, ...]:
        return tuple(r.host for r in self.rows if r.host is not None)


def group_instances(
    settings: AwsSettings, stack_name: str, endpoint_url: str | None
) -> list[AwsInstance]:
    """Every instance of the stack's Auto Scaling group. Raises AwsError."""
    return AutoScalingHosts.connect(settings.region, endpoint_url).instances(stack_name)


def aws_hosts(where: AwsStack, endpoint_url: str | None = None) -> AwsHosts:
    """The stack's instances and the fleet host each is (`conveyor aws hosts`). Raises
    SpecError(s), NoComposeFile (the default stack name is the project's), AwsError."""
    settings = where.settings()
    name = where.name(settings)
    endpoint_url = endpoint_url or where.environ.get("AWS_ENDPOINT_URL")
    instances = group_instances(settings, name, endpoint_url)
    rows = tuple(
        AwsHostRow(
            instance=i,
            host=instance_host(i, settings.hosts),
            left_out=left_out(i, settings.hosts),
        )
        for i in instances
    )
    return AwsHosts(stack_name=name, region=settings.region, rows=rows)


# One learned fleet per (conveyor.yaml, project, endpoint, ttl) in this process, with the
# file's version it was made from.
_SOURCES: dict[tuple[Path, str, str | None, float], tuple[Stamp, LearnedFleet]] = {}
_SOURCES_LOCK = threading.Lock()


def aws_fleet_source(
    conveyor_file: Path,
    name: str,
    project: str,
    environ: Mapping[str, str],
    ttl: float = LEARN_EVERY,
) -> LearnedFleet:
    """The fleet of `hosts_from: aws`, asked of AWS at most every `ttl` seconds. `conveyor_file`
    (absolute; `name` in messages) gives the `aws:` section; `project` the default stack name.
    Raises SpecError(s) now, AwsError when first asked.

    Kept per file, project and endpoint while the file is unchanged (its mtime and size, as
    app.fleet_file keeps written fleets): every engine a process opens (the server opens one
    per environment, sync and heal) shares one learned fleet, so one boto3 client and one
    question to AWS per period, not one per `Project.fleet()`. A changed file makes a new one."""
    endpoint = environ.get("AWS_ENDPOINT_URL") or None
    key = (conveyor_file, project, endpoint, ttl)
    stamp = file_stamp(conveyor_file)
    with _SOURCES_LOCK:
        known = _SOURCES.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
        # A SpecError leaves nothing kept: the file is read again next time.
        source = _learned_fleet(conveyor_file, name, project, endpoint, ttl)
        _SOURCES[key] = (stamp, source)
        return source


def _learned_fleet(
    conveyor_file: Path, name: str, project: str, endpoint: str | None, ttl: float
) -> LearnedFleet:
    settings = load_aws_settings(conveyor_file, name)
    stack = stack_name_of(settings, project)
    # Made on first use and kept: a boto3 client takes about half a second of CPU to make.
    clients: list[AutoScalingHosts] = []

    def fetch() -> Fleet:
        if not clients:
            clients.append(AutoScalingHosts.connect(settings.region, endpoint))
        return aws_fleet(clients[0].instances(stack), settings.hosts)

    return LearnedFleet(fetch, ttl=ttl)
