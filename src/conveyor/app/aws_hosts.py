"""The AWS stack's Auto Scaling group as the fleet (docs/aws.md, "The group's hosts as the
fleet"): conveyor.yaml's `hosts_from: aws`, and `conveyor aws hosts`.

    listing = aws_hosts(compose_files, conveyor_file, environ, cwd)   # every instance, and
                                                                     # the host it is (or why not)
    source = aws_fleet_source(conveyor_file, name, project, environ) # what Project.engine()
                                                                     # drives: learned every 30 s

The endpoint is AWS unless AWS_ENDPOINT_URL (in the environment given) points elsewhere: the
tests use moto's server on 127.0.0.1. Credentials come from boto3's usual chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.project import find_compose_files
from conveyor.deploy.fleet_source import LEARN_EVERY, LearnedFleet
from conveyor.model.aws import AwsInstance, AwsSettings
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.plan.aws_fleet import aws_fleet, instance_host, left_out
from conveyor.provision.aws.hosts import AutoScalingHosts
from conveyor.spec.aws import load_aws_settings
from conveyor.spec.compose import load_compose


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


def stack_name_of(settings: AwsSettings, project: str) -> str:
    """The stack `conveyor aws apply` makes for `project` (aws.stack_name over the default)."""
    return settings.stack_name or f"conveyor-{project}"


def group_instances(
    settings: AwsSettings, stack_name: str, endpoint_url: str | None
) -> list[AwsInstance]:
    """Every instance of the stack's Auto Scaling group. Raises AwsError."""
    return AutoScalingHosts.connect(settings.region, endpoint_url).instances(stack_name)


def aws_hosts(
    compose_files: Sequence[Path],
    conveyor_file: Path,
    environ: Mapping[str, str],
    cwd: Path,
    project_name: str | None = None,
    region: str | None = None,
    stack_name: str | None = None,
    endpoint_url: str | None = None,
) -> AwsHosts:
    """The stack's instances and the fleet host each is (`conveyor aws hosts`). Raises
    SpecError(s), NoComposeFile (the default stack name is the project's), AwsError."""
    settings = load_aws_settings(cwd / conveyor_file, str(conveyor_file))
    if region is not None:
        settings = settings.model_copy(update={"region": region})
    name = stack_name or settings.stack_name
    if name is None:
        files = find_compose_files(compose_files, environ, cwd)
        stack = load_compose(files, project_name, environ, cwd=cwd).stack
        name = stack_name_of(settings, stack.project)
    instances = group_instances(settings, name, endpoint_url or environ.get("AWS_ENDPOINT_URL"))
    rows = tuple(
        AwsHostRow(
            instance=i,
            host=instance_host(i, settings.hosts),
            left_out=left_out(i, settings.hosts),
        )
        for i in instances
    )
    return AwsHosts(stack_name=name, region=settings.region, rows=rows)


def aws_fleet_source(
    conveyor_file: Path,
    name: str,
    project: str,
    environ: Mapping[str, str],
    ttl: float = LEARN_EVERY,
) -> LearnedFleet:
    """The fleet of `hosts_from: aws`, asked of AWS at most every `ttl` seconds. `conveyor_file`
    (absolute; `name` in messages) gives the `aws:` section; `project` the default stack name.
    Raises SpecError(s) now, AwsError when first asked."""
    settings = load_aws_settings(conveyor_file, name)
    stack = stack_name_of(settings, project)
    endpoint = environ.get("AWS_ENDPOINT_URL") or None
    # Made on first use and kept: a boto3 client takes about half a second of CPU to make.
    clients: list[AutoScalingHosts] = []

    def fetch() -> Fleet:
        if not clients:
            clients.append(AutoScalingHosts.connect(settings.region, endpoint))
        return aws_fleet(clients[0].instances(stack), settings.hosts)

    return LearnedFleet(fetch, ttl=ttl)
