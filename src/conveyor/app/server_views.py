"""Typed results of the GitOps server's API (and of `conveyor token`). Their JSON is the API's
documented form (docs/server.md, the OpenAPI document): change a field only together with that
page. Views of things the CLI already shows are reused from `app.views` and `app.ci_views`
(StatusView, ReleaseView, RolloutView, TimelineView, PipelineSummary, JobView, JobLog)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from conveyor.app.views import JSON_VERSION, StatusView
from conveyor.gitops.sync import Supersession
from conveyor.model.access import AuditRecord, Role

# What an environment is doing, as the API reports it.
EnvironmentState = Literal["empty", "syncing", "serving", "failed", "suspended"]


class EnvironmentSummary(BaseModel):
    """One environment of conveyor.yaml and what it serves."""

    name: str
    branch: str | None  # None: fed by promotion (`promote_from`)
    promote_from: str | None = None
    protected: bool = False
    suspended: bool = False
    state: EnvironmentState
    release: int | None  # the release serving
    commit: str | None  # the commit that release was built from
    target: str = "docker"  # or kubernetes: releases are commits to a deploy repository


class DeliveryView(BaseModel):
    """A `target: kubernetes` environment's release as a commit of its deploy repository:
    delivered to git; Flux applies it (its events, POST /hooks/flux, say how that went)."""

    repo: str
    branch: str
    overlay: str  # the directory Flux's Kustomization applies
    commit: str | None  # the deploy repository's commit holding the release
    release: int | None
    # committed (no Flux event names the commit yet), reconciled or failed (Flux said so)
    flux: str = "committed"
    flux_message: str = ""


class EnvironmentDetail(BaseModel):
    version: int = JSON_VERSION
    environment: EnvironmentSummary
    desired_commit: str | None  # what git says (the branch's head, or its pin), None before
    # the first fetch; for an environment fed by promotion, what was promoted last
    pinned_commit: str | None = None  # a pin file on the branch holds the environment here
    failed_commit: str | None = None  # the newest commit that was not deployed, if any
    reason: str = ""  # why it was not (pipeline, rollout, signature)
    syncing_commit: str | None = None  # the commit being brought in now
    waiting: str = ""  # what an automatic promotion into it waits for (unmet gates)
    approvals: list[int] = []  # releases of `promote_from` approved for promotion into it
    status: StatusView | None  # services and replicas; None while nothing was deployed
    # The last commit a newer one superseded while its pipeline ran (not deployed, not failed).
    superseded: Supersession | None = None
    delivery: DeliveryView | None = None  # target: kubernetes: where the release is in git


class CommitView(BaseModel):
    """A commit of the source repository, as a page shows it."""

    sha: str
    author: str  # `Name <mail>`
    title: str  # the message's first line
    committed_at: str  # committer time, UTC ISO 8601


class ServiceDiff(BaseModel):
    service: str
    desired_image: str | None  # None: in git, not running
    running_image: str | None  # None: running, not in git
    desired_replicas: int
    running_replicas: int
    differences: list[str]  # what differs, one phrase each ("image", "replicas 2 → 3"…)


class DiffView(BaseModel):
    version: int = JSON_VERSION
    environment: str
    desired_commit: str | None
    running_commit: str | None
    in_sync: bool
    services: list[ServiceDiff]  # only the services that differ
    # A kubernetes environment: what delivering `desired_commit` would change in its
    # directory of the deploy branch, as a unified diff ("" when nothing; None otherwise).
    manifests: str | None = None
    note: str = ""  # why the diff is partial (the registry could not be asked, say)


ActionName = Literal[
    "promote", "rollback", "suspend", "resume", "approve", "cancel", "retry", "play"
]


class ActionResult(BaseModel):
    """What an acting request started or changed. A refused action is an HTTP 409, never an
    ActionResult."""

    action: ActionName
    environment: str
    message: str
    release: int | None = None  # the release the environment moves to (promote, rollback)
    rollout: int | None = None  # the rollout started, when one was


class FluxAnswer(BaseModel):
    """The answer to a Flux notification event."""

    kind: str  # the event it became: flux.reconciled or flux.failed
    environment: str | None  # the environment it was recorded for (None: none of them)


class AlertsReceived(BaseModel):
    """The answer to an Alertmanager webhook delivery."""

    alerts: int  # alerts in the delivery (a group's whole state)
    told: list[str]  # the events it made, "<kind> <alertname>": starts and ends not told yet


class HookAnswer(BaseModel):
    """The answer to a webhook delivery that was verified."""

    source: str
    delivery_id: str
    duplicate: bool  # already received: nothing was done again
    handed_over: bool  # the server's controller took it at once (else it waits as pending)


class TokenView(BaseModel):
    """An API token without its secret (never shown again after creation)."""

    name: str
    role: Role
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class TokenCreated(BaseModel):
    name: str
    role: Role
    token: str  # the only time it is shown


class TokenList(BaseModel):
    version: int = JSON_VERSION
    tokens: list[TokenView]


class AuditLog(BaseModel):
    version: int = JSON_VERSION
    records: list[AuditRecord]  # newest first
