"""Typed results of the use cases. Their `model_dump()` is the `--json` form documented in
docs/cli.md (and, later, the HTTP API's): change a field only together with that page."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from conveyor.model.checks import NagiosHealth
from conveyor.model.events import Event
from conveyor.model.release import (
    OutcomeStatus,
    ReplicaHealth,
    RolloutKind,
    RolloutStatus,
    RouterState,
)

JSON_VERSION = 1


class RolloutResult(BaseModel):
    status: OutcomeStatus
    release: int | None
    rollout: int | None = None
    error: str | None = None
    seconds: float = 0.0
    rollback: int | None = None  # the rollout that rolled back a failed one

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "unchanged")


class ServiceURL(BaseModel):
    name: str
    url: str


class ComponentView(BaseModel):
    """A supervised platform component (Prometheus, Alertmanager, node exporter; the log store
    and Nagios add theirs): where it answers on loopback and whether it does."""

    name: str
    url: str
    running: bool
    healthy: bool
    pid: int | None = None
    detail: str = ""  # what else a person wants at a glance (the log store: lines, size)


class UpResult(BaseModel):
    project: str
    outcome: RolloutResult
    recovered: list[RolloutResult] = []
    agent_pid: int | None = None
    agent_log: str | None = None
    urls: list[ServiceURL] = []
    checks: bool = False  # Nagios runs the project's checks (docs/checks.md)
    checks_error: str | None = None  # why it does not, when it should
    components: list[ComponentView] = []  # platform components started for the project
    warnings: list[str] = []  # one could not start: the app is up all the same


class DeployResult(BaseModel):
    outcome: RolloutResult
    recovered: list[RolloutResult] = []


class DownResult(BaseModel):
    project: str
    agent_stopped: bool
    seconds: float
    volumes_removed: list[str] = []
    checks_stopped: bool = False  # its Nagios was running and was stopped
    components_stopped: list[str] = []


class PlanStep(BaseModel):
    kind: str
    service: str
    replica: str
    batch: int
    seconds: float
    services: list[str]
    network: str = ""  # `network` / `unnetwork` steps
    reason: str
    description: str
    host: str = ""  # on a fleet: the host a `start` runs its replica on


class PlanView(BaseModel):
    version: int = JSON_VERSION
    from_release: int | None
    new_release: bool
    release: int | None  # the release the plan moves to (None: not recorded yet)
    steps: list[PlanStep]
    notes: list[str]
    # What the compose files ask for that Conveyor accepts but does not do (file:line).
    warnings: list[str] = []

    def as_json(self) -> dict[str, object]:
        return self.model_dump(exclude={"release"})


class ReplicaView(BaseModel):
    name: str
    release: int
    port: int
    address: str = "127.0.0.1"  # where the replica answers: loopback, or its project network IP
    running: bool
    exit_code: int | None
    health: ReplicaHealth
    router: RouterState
    current: bool
    container: str
    uptime: float | None
    host: str = ""  # the fleet host it runs on ("" on one host)


class ServiceView(BaseModel):
    name: str
    # `global`: one replica per host (on a fleet, desired_replicas is the app hosts that are
    # up and allowed by its constraints)
    mode: Literal["replicated", "global"] = "replicated"
    desired_replicas: int
    running_replicas: int
    image: str | None
    spec_hash: str | None
    url: str | None
    replicas: list[ReplicaView]


class RouterView(BaseModel):
    running: bool
    stats_url: str | None


class AgentView(BaseModel):
    running: bool
    pid: int | None


class ChecksHealthView(BaseModel):
    """Nagios for `conveyor status`: whether it runs and what it finds."""

    enabled: bool  # Conveyor runs Nagios for this project (`up` without --no-checks)
    running: bool
    pid: int | None = None
    checks: int = 0
    problems: int = 0
    status_age: float | None = None  # seconds since Nagios last wrote its status file
    stale: bool = False
    status_file: str | None = None

    @classmethod
    def of(cls, health: NagiosHealth, enabled: bool, status_file: str) -> ChecksHealthView:
        return cls(
            enabled=enabled,
            running=health.running,
            pid=health.pid,
            checks=health.checks,
            problems=health.problems,
            status_age=health.status_age,
            stale=health.stale,
            status_file=status_file if health.running else None,
        )

    @property
    def summary(self) -> str:
        if not self.enabled and not self.running:
            return "off"
        if not self.running:
            return "not running"
        age = f", status {self.status_age:g}s old" if self.status_age is not None else ""
        state = "stale" if self.stale else "running"
        noun = "problem" if self.problems == 1 else "problems"
        return f"{state} (pid {self.pid}): {self.checks} checks, {self.problems} {noun}{age}"


class StatusView(BaseModel):
    version: int = JSON_VERSION
    project: str
    release: int | None
    commit: str | None
    router: RouterView
    agent: AgentView
    services: list[ServiceView]
    checks: ChecksHealthView | None = None  # Nagios (docs/checks.md)
    components: list[ComponentView] = []  # one per platform component the project runs
    # On a fleet, hosts that left it with the project still there (plan.fleet_retire).
    notes: list[str] = []


class RolloutView(BaseModel):
    id: int
    kind: RolloutKind
    from_release: int | None
    to_release: int | None
    status: RolloutStatus
    started_at: float
    finished_at: float | None
    duration: float | None
    actor: str
    reason: str
    error: str | None
    # A kubernetes environment's rollout is a commit of its deploy repository (a delivery or
    # a revert): that commit, and Flux's word on it (committed, reconciled, failed).
    deploy_commit: str | None = None
    flux: str | None = None


class ReleaseImage(BaseModel):
    image: str
    spec_hash: str


class ReleaseView(BaseModel):
    number: int
    created_at: float
    commit: str | None
    services: dict[str, ReleaseImage]
    # A kubernetes environment's release (docs/gitops.md): the deploy repository's commit
    # holding it, and Flux's word on it (committed, reconciled, failed).
    deploy_commit: str | None = None
    flux: str | None = None


class HistoryView(BaseModel):
    version: int = JSON_VERSION
    rollouts: list[RolloutView]
    releases: list[ReleaseView]


# the timeline ------------------------------------------------------------------------------------


class TimelineJob(BaseModel):
    id: int
    name: str
    stage: str
    status: str
    started_at: float | None
    finished_at: float | None
    duration: float | None
    environment: str | None


class TimelinePipeline(BaseModel):
    id: int
    project: str
    ref: str | None
    status: str
    started_at: float
    finished_at: float | None
    duration: float | None
    jobs: list[TimelineJob]


class TimelineRelease(BaseModel):
    project: str
    environment: str
    number: int
    created_at: float
    pipeline: int | None
    job: int | None
    images: dict[str, str]
    rollouts: list[RolloutView]


class TimelineEntry(BaseModel):
    """One line of the timeline, in time order."""

    at: float
    duration: float | None
    # `delivery`: a kubernetes environment's release committed to its deploy repository (or
    # reverted), then Flux's word on that commit
    what: Literal["pipeline", "job", "release", "rollout", "delivery"]
    project: str
    id: int
    title: str
    status: str


class TimelineView(BaseModel):
    version: int = JSON_VERSION
    commit: str | None  # None: a deploy of files that are not in a git checkout
    subject: str  # the commit's title, or what was asked for
    pipelines: list[TimelinePipeline]
    releases: list[TimelineRelease]
    entries: list[TimelineEntry]
    events: list[Event] = []
    pipelines_left_out: int = 0  # older pipelines of the commit not read (asked for the newest)
