"""Releases (immutable: a stack with resolved images), rollouts and what the runtime reports."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field

from conveyor.model.endpoint import Endpoint
from conveyor.model.stack import Frozen, Service, Stack


class ServiceRelease(Frozen):
    """One service of a release: its spec plus the exact image it runs."""

    service: Service
    image_id: str  # sha256:... as the Docker Engine names it
    image_ref: str  # the tag it was built or pulled as
    # A fleet: the controller's files its replicas mount (plan.fleet_files.release_files) ->
    # their content digest, so a changed file is a new release and a rollout (the hosts get
    # copies). Empty on one host, where replicas mount the files themselves.
    files: dict[str, str] = Field(default_factory=dict)

    @property
    def spec_hash(self) -> str:
        """Hash of everything that changes a replica; a different hash means a rollout."""
        s = self.service
        relevant = s.model_dump(
            mode="json",
            include={
                "command",
                "entrypoint",
                "environment",
                "healthcheck",
                "limits",
                "stop_grace_period",
                "stop_signal",
                "volumes",
                "secrets",
                "labels",
                "user",
                "working_dir",
                "routing",
            },
        )
        # Fields added later count only when set, so releases recorded before they existed
        # keep their hash (an upgrade of Conveyor must not roll every replica).
        relevant |= s.model_dump(
            mode="json",
            include={"configs", "restart", "reservations", "container"},
            exclude_defaults=True,
        )
        relevant["image_id"] = self.image_id
        if self.files:  # only on a fleet: one host's hashes stay what they were
            relevant["files"] = self.files
        # Added with project networking: left out under host networking, so the hashes of
        # releases recorded before stay what they were (no rollout after an upgrade).
        if s.networking != "host":
            relevant["networking"] = s.model_dump(mode="json", include={"networking", "networks"})
            relevant["networking"]["port"] = s.app_port()  # PORT in the replica's environment
            relevant["networking"]["udp"] = [p.model_dump(mode="json") for p in s.udp_ports()]
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


class Release(Frozen):
    """A stack at one point with its image digests. Never changes once recorded."""

    number: int  # 1, 2, 3… per project; 0 means "not recorded yet"
    project: str
    services: dict[str, ServiceRelease]
    stack: Stack
    commit: str | None = None
    pipeline: int | None = None  # the CI pipeline (and job) that deployed it, if one did
    job: int | None = None
    created_at: float = 0.0

    def order(self) -> list[str]:
        return self.stack.order()


ReplicaHealth = Literal["healthy", "unhealthy", "starting", "none"]
RouterState = Literal["ready", "drain", "maint", "absent", "down"]


class ObservedReplica(Frozen):
    """One container the runtime reports, joined with its state in HAProxy."""

    replica: str  # replica id, also the HAProxy server name
    service: str
    container_id: str
    spec_hash: str
    release: int
    endpoint: Endpoint  # where the replica answers (probes, HAProxy's server)
    running: bool
    # A fleet (project networking): the host port its engine publishes each of its TCP ports
    # on (ReplicaRun.publish_on): the replica's port -> the host port Docker picked.
    published_ports: dict[int, int] = Field(default_factory=dict)
    # The fleet host it runs on (FleetHost.name); "" on one host: the local engine's.
    host: str = ""
    exit_code: int | None = None
    health: ReplicaHealth = "none"  # the Docker Engine's health status
    router: RouterState = "absent"
    checks: Literal["up", "down", "unknown"] = "unknown"  # HAProxy's health checks of it
    weight: int | None = None  # HAProxy's weight of its server (None: not in HAProxy)
    paused: bool = False  # frozen by `docker pause`: running, answering nothing
    started_at: float = 0.0

    @property
    def failing(self) -> bool:
        """Running but failing its health check (Docker's, or HAProxy's while in rotation),
        or paused."""
        return self.running and (
            self.paused
            or self.health == "unhealthy"
            or (self.router == "ready" and self.checks == "down")
        )


class ObservedNetwork(Frozen):
    """A Docker network of the project as the runtime reports it."""

    docker_name: str
    spec_hash: str = ""  # what Conveyor created it from ("" for external networks)
    subnet: str | None = None


class ObservedAddress(Frozen):
    """A service address: the small container holding a network namespace on the service's
    networks, under the service's name, where HAProxy listens for it."""

    service: str
    container_id: str
    spec_hash: str
    running: bool
    netns: str | None = None  # the namespace's file (Docker's SandboxKey) while it runs


class Observed(Frozen):
    """Everything Conveyor sees of a project right now."""

    replicas: tuple[ObservedReplica, ...] = ()
    frontends: dict[str, int] = Field(default_factory=dict)  # service -> port HAProxy listens on
    # HAProxy servers with no container behind them (removed outside Conveyor): (service, name)
    orphans: tuple[tuple[str, str], ...] = ()
    networks: tuple[ObservedNetwork, ...] = ()
    addresses: tuple[ObservedAddress, ...] = ()
    # HAProxy runs another shape (listeners, binds, checks) than the release asks for
    router_stale: bool = False

    def of(self, service: str) -> list[ObservedReplica]:
        return [r for r in self.replicas if r.service == service]


# How a request to move the project ended (a rollout's status, or nothing to do).
OutcomeStatus = Literal["succeeded", "rolled_back", "failed", "paused", "unchanged"]
RolloutKind = Literal["up", "deploy", "rollback", "heal", "down", "recover"]
RolloutStatus = Literal["running", "succeeded", "failed", "rolled_back", "paused", "interrupted"]


# A service healed again within this window counts as crash-looping.
LOOP_WINDOW = 30.0
MAX_BACKOFF = 60.0


class HealBackoff(Frozen):
    """Exponential backoff between heals of one crash-looping service: 1, 2, 4 … 60 s."""

    streak: int = 0
    last_heal: float | None = None
    not_before: float = 0.0

    def after_heal(self, now: float) -> HealBackoff:
        """The backoff once the service has been healed at `now` (pure)."""
        looping = self.last_heal is not None and now - self.last_heal < LOOP_WINDOW
        streak = self.streak + 1 if looping else 0
        delay = 0.0 if streak == 0 else min(MAX_BACKOFF, 2.0 ** (streak - 1))
        return HealBackoff(streak=streak, last_heal=now, not_before=now + delay)

    @property
    def delay(self) -> float:
        return 0.0 if self.last_heal is None else self.not_before - self.last_heal
