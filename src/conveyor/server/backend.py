"""What the HTTP API asks of the server: the `ServerBackend` Protocol. The GitOps controller
implements it (environments from conveyor.yaml, each a project on this host); the API only
authenticates, audits and translates.

Reads raise `NotFound` (`UnknownEnvironment`…) for what does not exist: HTTP 404. Actions
raise `ActionRefused` with the reason when they cannot be done now: HTTP 409. Every method is
called from a worker thread, never from the event loop, so it may block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from conveyor.app.ci_views import GraphView, JobLog, JobView, PipelineSummary, PipelineView
from conveyor.app.dora import DoraView
from conveyor.app.hooks import HookDelivery
from conveyor.app.logs import LogTail
from conveyor.app.server_views import (
    ActionResult,
    CommitView,
    DiffView,
    EnvironmentDetail,
    EnvironmentSummary,
)
from conveyor.app.views import ReleaseView, RolloutView, TimelineView
from conveyor.errors import UnknownEnvironment
from conveyor.model.access import Principal
from conveyor.model.events import Event
from conveyor.model.logs import LogQuery, LogRecord


class ServerBackend(Protocol):
    # reading (viewer) ------------------------------------------------------------------------
    def environments(self) -> list[EnvironmentSummary]:
        """Every environment of conveyor.yaml, in its order."""
        ...

    def environment(self, env: str) -> EnvironmentDetail: ...

    def releases(self, env: str) -> list[ReleaseView]:
        """Newest first."""
        ...

    def rollouts(self, env: str) -> list[RolloutView]:
        """Newest first."""
        ...

    def pipelines(self, env: str) -> list[PipelineSummary]:
        """The pipelines run for the environment's commits, newest first."""
        ...

    def jobs(self, env: str, pipeline: int) -> list[JobView]: ...

    # Pipelines pages (the dashboard) ------------------------------------------------------

    def pipeline_page(self, env: str, before: int | None, limit: int) -> list[PipelineSummary]:
        """`env`'s pipelines older than pipeline `before` (None: from the newest), newest
        first, at most `limit`: one page of the list."""
        ...

    def pipeline(self, env: str, pipeline: int) -> PipelineView:
        """One pipeline with its jobs (NotFound when it does not exist)."""
        ...

    def pipeline_graph(self, env: str, sha: str | None = None) -> GraphView | None:
        """The stages, jobs and `needs` of `env`'s pipeline file at commit `sha` (None: as
        its work tree has it now), as `conveyor ci graph` shows them; None when it cannot be
        read. The engine records a job only once it starts and records no `needs`, so the
        pipeline page takes both from here."""
        ...

    def artifact_file(self, env: str, job: int, path: str) -> Path:
        """The stored content of the file `path` among job `job`'s artifacts (NotFound when
        it has none such, or they expired)."""
        ...

    def commit_timeline(self, env: str, sha: str, newest: int | None = None) -> TimelineView:
        """Commit `sha` (a prefix will do) -> its pipelines (the newest `newest` of them, when
        given) -> releases -> rollouts, with the events recorded about them (the rollout's
        steps); NotFound for an unknown commit."""
        ...

    def cancel_pipeline(self, env: str, pipeline: int, actor: Principal) -> ActionResult:
        """Ask the process running `pipeline` to cancel it (the engine's cancel request, as
        GitLab's auto-cancel uses); ActionRefused when it is not running."""
        ...

    def retry_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        """GitLab's "Retry": run failed or canceled job `job` of a finished pipeline again, as
        a new attempt, then what it unblocks (in the background); ActionRefused when it cannot
        be retried now (not the latest attempt, not failed or canceled, its pipeline runs, or
        the pipeline is of a commit no longer checked out)."""
        ...

    def play_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        """GitLab's "Play": run manual job `job` (not run yet), then what it unblocks; a
        pipeline that passes then lets its commit roll out. ActionRefused as `retry_job`."""
        ...

    def job_log(self, env: str, job: int) -> JobLog: ...

    def timeline(self, env: str, limit: int = 10) -> list[TimelineView]:
        """Commit → pipeline → release → rollout → verdict, one view per commit (the newest
        `limit`), newest first."""
        ...

    def dora(self, env: str, since: str, until: float | None = None) -> DoraView:
        """DORA metrics of the environment over the `since` window (`30d`) before `until`
        (UNIX seconds; None: now). The dashboard's trends ask past windows."""
        ...

    def diff(self, env: str) -> DiffView:
        """Desired (git) against running, per service."""
        ...

    def events(self, after: int | None, limit: int) -> list[Event]:
        """Durable events with an id above `after` (all when None), oldest first, at most
        `limit`."""
        ...

    def logs(self, env: str, query: LogQuery) -> list[LogRecord]:
        """The environment's newest log records that match, newest first (docs/logs.md)."""
        ...

    def log_tail(self, env: str, query: LogQuery, after: int | None, limit: int) -> LogTail:
        """Matching records that came in after position `after` (None: from now), oldest
        first, at most `limit`, with the position to continue from."""
        ...

    def last_event_id(self) -> int | None:
        """The newest durable event's id (None: none yet): where a live view starts."""
        ...

    def commit(self, env: str, sha: str) -> CommitView:
        """Author, title and time of a commit `env` knows (NotFound when it is not fetched)."""
        ...

    # acting (deployer) -----------------------------------------------------------------------
    def promote(self, env: str, source: str, actor: Principal) -> ActionResult: ...

    def rollback(self, env: str, to_release: int | None, actor: Principal) -> ActionResult:
        """To `to_release`, else the previous release; recorded in git (issue 9, item 5)."""
        ...

    def suspend(self, env: str, actor: Principal) -> ActionResult:
        """Stop deploying and correcting drift in `env` until `resume`."""
        ...

    def resume(self, env: str, actor: Principal) -> ActionResult: ...

    def approve(self, env: str, release: int, actor: Principal) -> ActionResult:
        """Approve promoting `release` into `env` (a gate of conveyor.yaml)."""
        ...

    # webhooks --------------------------------------------------------------------------------
    def hook_received(self, delivery: HookDelivery) -> None:
        """A verified delivery, already persisted as pending: fetch now. Called once per
        delivery id; after a crash the controller finds the unfinished ones with
        `app.hooks.pending_deliveries`."""
        ...


class NoEnvironments:
    """PLACEHOLDER until the GitOps controller lands: a backend with no environments, so
    `conveyor server` answers its API (auth, tokens, audit, hooks persisted as pending) while
    nothing is deployed. Every environment is unknown (404); deliveries stay pending for the
    controller to take."""

    def environments(self) -> list[EnvironmentSummary]:
        return []

    def _unknown(self, env: str) -> UnknownEnvironment:
        return UnknownEnvironment(
            f"no environment {env!r}: this server runs without its controller yet"
        )

    def environment(self, env: str) -> EnvironmentDetail:
        raise self._unknown(env)

    def releases(self, env: str) -> list[ReleaseView]:
        raise self._unknown(env)

    def rollouts(self, env: str) -> list[RolloutView]:
        raise self._unknown(env)

    def pipelines(self, env: str) -> list[PipelineSummary]:
        raise self._unknown(env)

    def jobs(self, env: str, pipeline: int) -> list[JobView]:
        raise self._unknown(env)

    def job_log(self, env: str, job: int) -> JobLog:
        raise self._unknown(env)

    def pipeline_page(self, env: str, before: int | None, limit: int) -> list[PipelineSummary]:
        raise self._unknown(env)

    def pipeline(self, env: str, pipeline: int) -> PipelineView:
        raise self._unknown(env)

    def pipeline_graph(self, env: str, sha: str | None = None) -> GraphView | None:
        raise self._unknown(env)

    def artifact_file(self, env: str, job: int, path: str) -> Path:
        raise self._unknown(env)

    def commit_timeline(self, env: str, sha: str, newest: int | None = None) -> TimelineView:
        raise self._unknown(env)

    def cancel_pipeline(self, env: str, pipeline: int, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def retry_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def play_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def timeline(self, env: str, limit: int = 10) -> list[TimelineView]:
        raise self._unknown(env)

    def dora(self, env: str, since: str, until: float | None = None) -> DoraView:
        raise self._unknown(env)

    def diff(self, env: str) -> DiffView:
        raise self._unknown(env)

    def events(self, after: int | None, limit: int) -> list[Event]:
        return []

    def logs(self, env: str, query: LogQuery) -> list[LogRecord]:
        raise self._unknown(env)

    def log_tail(self, env: str, query: LogQuery, after: int | None, limit: int) -> LogTail:
        raise self._unknown(env)

    def last_event_id(self) -> int | None:
        return None

    def commit(self, env: str, sha: str) -> CommitView:
        raise self._unknown(env)

    def promote(self, env: str, source: str, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def rollback(self, env: str, to_release: int | None, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def suspend(self, env: str, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def resume(self, env: str, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def approve(self, env: str, release: int, actor: Principal) -> ActionResult:
        raise self._unknown(env)

    def hook_received(self, delivery: HookDelivery) -> None:
        pass  # persisted as pending by the API; the controller will take it
