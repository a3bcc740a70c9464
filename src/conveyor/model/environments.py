"""What `conveyor.yaml` says: the environments a repository is delivered to, and how.

Pure, frozen data (`spec.conveyor_file` loads it). One environment follows a branch (every
commit on it is deployed) or is promoted from another environment behind gates; each runs as
its own project on the host, `<base>-<name>`, with per-service overrides of the compose file.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import Field

from conveyor.model.alert_thresholds import AlertThresholds
from conveyor.model.aws import AwsSettings
from conveyor.model.backup import BackupsConfig
from conveyor.model.checks import ChecksSettings
from conveyor.model.deploy_repo import DeployRepo, TargetKind
from conveyor.model.environment import DeliveryPolicy, Environment, LocalTarget
from conveyor.model.fleet import Fleet
from conveyor.model.flux import FluxSettings
from conveyor.model.frozen import Frozen
from conveyor.model.kube import KubeOptions
from conveyor.model.log_shipping import LogShipping
from conveyor.model.notifications import NotificationsSpec
from conveyor.model.slo import ServiceSLO

DEFAULT_COMPOSE = "compose.yaml"
DEFAULT_POLL_INTERVAL = 60.0  # seconds; webhooks make a change visible at once anyway

# What the server does with a commit whose pipeline a crash of the server interrupted:
# `rerun` brings it in again (a new pipeline), `abandon` marks it failed until the branch moves.
OnInterrupted = Literal["rerun", "abandon"]


class PromotionGates(Frozen):
    """What must hold before a release moves from `promote_from` into this environment."""

    soak: float = 0.0  # seconds the release has served healthy in the source environment
    pipeline_passed: bool = True  # its commit's pipeline succeeded (or there is no pipeline)
    approval: bool = False  # someone with a deployer token approved it through the API


class ServiceOverride(Frozen):
    """Per-environment changes to one compose service."""

    replicas: int | None = None
    environment: dict[str, str] = Field(default_factory=dict)  # added to / replacing the file's
    # A port the compose file publishes on the host -> the port this environment publishes it
    # on (two environments of one app cannot both listen on 8080).
    ports: dict[int, int] = Field(default_factory=dict)


class SshVerify(Frozen):
    """Commits must carry an SSH signature by a key of this allowed-signers file (the format
    of `ssh-keygen -Y verify`, as git's `gpg.ssh.allowedSignersFile`)."""

    kind: Literal["ssh"] = "ssh"
    allowed_signers: str  # absolute path on the server's host, never a file of the repository


class GpgVerify(Frozen):
    """Commits must carry an OpenPGP signature by a key of this GnuPG home directory and, when
    `fingerprints` are given, by one of those keys (primary or signing subkey)."""

    kind: Literal["gpg"] = "gpg"
    keyring: str  # absolute path of a GNUPGHOME directory holding the trusted public keys
    fingerprints: tuple[str, ...] = ()  # upper-case hex, no spaces


VerifyPolicy = Annotated[SshVerify | GpgVerify, Field(discriminator="kind")]


class EnvironmentSpec(Frozen):
    """One environment of `conveyor.yaml`."""

    name: str
    branch: str | None = None  # every commit on this branch is deployed
    # With a branch: only commits carrying a tag that matches this glob (`v*`) are deployed.
    tag_pattern: str | None = None
    compose: str = DEFAULT_COMPOSE  # path in the repository
    poll_interval: float = DEFAULT_POLL_INTERVAL  # seconds between fetches
    protected: bool = False  # only deployer and admin tokens may promote or roll back
    promote_from: str | None = None  # or: releases come from that environment, behind gates
    gates: PromotionGates = PromotionGates()
    # With promote_from: the server promotes the source's serving release by itself once
    # every gate holds (else only `conveyor promote` does).
    auto_promote: bool = False
    overrides: dict[str, ServiceOverride] = Field(default_factory=dict)
    verify: VerifyPolicy | None = None  # commit signatures required before a deploy
    on_interrupted: OnInterrupted = "rerun"  # a pipeline the server's crash interrupted
    # Service -> its objectives in this environment, replacing the compose file's
    # x-conveyor.slo for that service (docs/alerts.md).
    slo: dict[str, ServiceSLO] = Field(default_factory=dict)
    # The thresholds of the service alerts in this environment, where a service's own
    # x-conveyor.alerts leaves one unset (docs/alerts.md).
    alerts: AlertThresholds | None = None
    # `kubernetes`: a release is a commit of the rendered manifests to `deploy` (the deploy
    # repository Flux watches) instead of a rollout on Docker (docs/gitops.md).
    target: TargetKind = "docker"
    deploy: DeployRepo | None = None
    # Where each key was written (dotted path under this environment -> line), so a check
    # against the compose file (`spec.overrides`) can point at conveyor.yaml. Not serialised.
    file: str = Field(default="conveyor.yaml", exclude=True, repr=False)
    lines: dict[str, int] = Field(default_factory=dict, exclude=True, repr=False)

    def project(self, base: str) -> str:
        """The Compose project this environment runs as on the host."""
        return f"{base}-{self.name}"

    def environment(self, base: str) -> Environment:
        """The deploy layer's view of this environment (its target and delivery policy)."""
        return Environment(
            name=self.name,
            target=LocalTarget(project=self.project(base)),
            policy=DeliveryPolicy(
                branch=self.branch, promote_from=self.promote_from, protected=self.protected
            ),
        )

    def accepts_tag(self, tag: str) -> bool:
        """Whether a tag name matches `tag_pattern` (a shell glob, case-sensitive)."""
        return self.tag_pattern is not None and fnmatchcase(tag, self.tag_pattern)

    def line(self, *path: str) -> int | None:
        """The line `path` (under this environment) was written at, or the nearest parent's."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(".".join(path[:end]))
            if found is not None:
                return found
        return None


class ConveyorConfig(Frozen):
    """A repository's `conveyor.yaml`."""

    environments: dict[str, EnvironmentSpec]
    notifications: NotificationsSpec = NotificationsSpec()
    logs: LogShipping = LogShipping()  # where the stored log lines are shipped
    checks: ChecksSettings = ChecksSettings()  # Nagios for every environment (docs/checks.md)
    aws: AwsSettings = AwsSettings()  # the infrastructure `conveyor aws` renders (docs/aws.md)
    backups: BackupsConfig = BackupsConfig()  # `conveyor backup`, schedules (docs/backups.md)
    flux: FluxSettings = FluxSettings()  # `flux:` (docs/flux.md): how Flux delivers on Kubernetes
    fleet: Fleet = Fleet()  # `hosts:`/`inventory:` (docs/provision.md); empty: this machine only
    kubernetes: KubeOptions = KubeOptions()  # `render kubernetes` (docs/kubernetes.md)

    def promotion_order(self) -> list[str]:
        """Environment names by name, except that a `promote_from` source comes before the
        environments it feeds: the order to reconcile them in."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            source = self.environments[name].promote_from
            if source is not None and source in self.environments:
                visit(source)
            done.append(name)

        for name in sorted(self.environments):
            visit(name)
        return done

    def on_branch(self, branch: str) -> list[EnvironmentSpec]:
        """The environments that deploy the commits of `branch`, by name."""
        return [e for _, e in sorted(self.environments.items()) if e.branch == branch]
