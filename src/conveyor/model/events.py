"""The timeline: one typed event for everything Conveyor does or notices.

Appending an event is the only way Conveyor reports. Every event names the project and, where
they apply, the environment, commit, pipeline, job, release, rollout, service and replica it is
about, so one query tells commit → pipeline → release → rollout → verdict. Subscribers in the
process turn events into CLI progress, structured log lines and (for the server) live updates.

Most kinds are recorded in the state database; `EPHEMERAL` kinds (a build's output line, a CI
job's output chunk, a step starting) are only delivered to subscribers: their durable form is a
log file or the event that closes them.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol

from pydantic import Field

from conveyor.model.stack import Frozen

Level = Literal["debug", "info", "warning", "error"]

EventKind = Literal[
    # releases and rollouts
    "release.created",
    "rollout.started",
    "rollout.succeeded",
    "rollout.failed",
    "rollout.rolled_back",
    "rollout.paused",
    "rollout.interrupted",
    "rollout.note",  # a warning from the planner a user should read
    "rollout.message",  # a line of progress ("rolling back to release 3")
    "step.started",
    "step.done",
    "step.failed",
    "step.skipped",
    "image.output",  # a line of an image build or pull
    "heal.succeeded",
    "heal.failed",
    "heal.backoff",
    "project.down",
    "reconciler.started",
    "reconciler.stopped",
    "reconciler.error",
    "engine.away",  # the Docker Engine stopped answering: nothing is replaced meanwhile
    "engine.back",  # it answers again
    # A fleet host changed state (deploy.fleet_health): down, its replicas are placed on the
    # others; back, its stale containers are removed. data: {"host", "before", "after"}
    "host.changed",
    # Hosts joined or left a fleet learned from AWS (`hosts_from: aws`), or asking AWS failed
    # (the hosts known are kept). data: {"joined": [...], "left": [...], "error": ...}
    "fleet.changed",
    # The project was taken off a host that left the fleet (its replicas moved, its HAProxy,
    # containers and files removed: deploy.fleet_retire), or that failed (warning; tried again
    # at the next deploy). data: {"host", "error"?}
    "host.retired",
    "logs.error",  # the log collector met an error (engine away, store full); it retries
    "daemon.restarted",  # a supervised daemon was found dead and started; data: {"component"}
    "daemon.failed",  # it could not be started; data: {"component"}
    # CI
    "pipeline.started",
    "pipeline.finished",
    "pipeline.canceled",
    "pipeline.interrupted",  # left running by a server that died; data: {"reason": ...}
    "pipeline.note",  # a warning about a pipeline about to run ("registry not available")
    "job.started",
    "job.output",
    "job.finished",
    # log shipping (observe.logs.ship); data: {"destination", ...counts}
    "logs.ship_failing",  # a destination stopped taking records: they wait in its buffer
    "logs.ship_recovered",  # it takes them again
    "logs.ship_rejected",  # it refused records for good (a mapping conflict, a 400): dropped
    "logs.ship_dropped",  # its buffer reached its cap: the oldest records were dropped
    # GitOps: the server bringing environments to what git says
    "source.fetched",
    "source.error",
    "sync.started",
    "sync.succeeded",
    "sync.failed",
    # A newer commit arrived while the pipeline of the one being brought in ran: data:
    # {"superseded_by", "pipeline", "action"} (what auto-cancel did with the pipeline).
    "sync.superseded",
    "sync.skipped",  # that commit was not deployed (superseded); data: {"superseded_by"}
    # No app host of the fleet took replicas: tried again later (gitops.deferrals); data:
    # {"attempt", "retry_in"} (seconds)
    "sync.deferred",
    "environment.suspended",
    "environment.resumed",
    "drift.corrected",  # data: {"services": [...], "what": "..."}
    "promotion.succeeded",  # data: {"from": env}
    "promotion.failed",  # data: {"from": env, "reason": "..."}
    "signature.rejected",  # data: {"reason": "..."}; subject.commit is the rejected commit
    # infrastructure checks (Nagios: observe.checks); data of check.*: the notification
    "check.changed",  # Nagios notified a PROBLEM or a RECOVERY of a check or a host
    "check.note",  # it notified what is not news: flapping, downtime, acknowledgement
    "checks.started",
    "checks.reloaded",  # the checks changed with the stack: validated, then reloaded
    "checks.restarted",  # Nagios was found not running and was started again
    "checks.stopped",
    "checks.error",  # Nagios refused its configuration or could not start
    "checks.downtime",  # a downtime was scheduled; data: {"checks": [...], "end": ...}
    # Alertmanager's webhook (app.alerts): an alert started firing or resolved; data:
    # {"alertname", "severity", "labels", "annotations", "starts_at", "ends_at", "fingerprint"}
    "alert.firing",
    "alert.resolved",
    # backups (app.backup); data: {"id", "service", "size", "parts"} or {"error"}
    "backup.created",
    "backup.failed",
    "backup.expired",  # retention deleted it
    "backup.verified",
    "backup.verify_failed",  # it cannot be restored
    "restore.succeeded",
    "restore.failed",
    # Flux's notification-controller (POST /hooks/flux, app.flux_hook) about an environment
    # delivered to Kubernetes; data: {"kind", "name", "namespace", "reason", "revision",
    # "controller"}
    "flux.reconciled",  # an info event: applied, health checks passed, ...
    "flux.failed",  # an error event: the build, apply or health check of a revision failed
    # A `target: kubernetes` environment's release committed to its deploy repository
    # (app.kube_delivery); data: {"deploy_commit", "release", "repo", "branch", "overlay"}
    "delivery.committed",
    "delivery.unchanged",  # the branch already held these very files: no commit
    "delivery.reverted",  # a rollback: data adds {"reverts"} (the release commits undone)
    "delivery.warning",  # what the cluster does otherwise than compose.yaml says (file:line)
]

EPHEMERAL: frozenset[str] = frozenset(
    {"step.started", "image.output", "job.output", "rollout.message", "pipeline.note"}
)


class Subject(Frozen):
    """What an event is about; every field is optional but `project`."""

    project: str
    environment: str | None = None
    commit: str | None = None
    pipeline: int | None = None
    job: int | None = None
    release: int | None = None
    rollout: int | None = None
    service: str | None = None
    replica: str | None = None

    def with_(self, **fields: Any) -> Subject:
        return self.model_copy(update={k: v for k, v in fields.items() if v is not None})


class Event(Frozen):
    kind: EventKind
    message: str
    subject: Subject
    actor: str = "cli"
    level: Level = "info"
    ts: float = Field(default_factory=time.time)
    data: dict[str, Any] = Field(default_factory=dict)
    id: int = 0  # assigned when recorded; 0 for ephemeral events

    @property
    def durable(self) -> bool:
        return self.kind not in EPHEMERAL

    def flat(self) -> dict[str, Any]:
        """The event as one flat JSON object (the --json and log-line form)."""
        out: dict[str, Any] = {
            "id": self.id or None,
            "ts": self.ts,
            "kind": self.kind,
            "level": self.level,
            "actor": self.actor,
            "message": self.message,
        }
        out.update(self.subject.model_dump())
        if self.data:
            out["data"] = self.data
        return out


class Reporter(Protocol):
    """What reports events (the store's Timeline): for code that only emits."""

    def emit(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
    ) -> Event: ...
