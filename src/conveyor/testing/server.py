"""An in-memory `ServerBackend` (server/backend.py) for tests of the HTTP API: environments,
releases, rollouts, pipelines and events in dicts, with the actions' rules a user would see
(suspended environments refuse to move, promotion needs a release in the source environment
and, when the target asks for it, an approval; rollback needs an earlier release). It is a
real implementation of the Protocol, not a mock: the GitOps controller is the other one."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.app.ci_views import GraphView, JobLog, JobView, PipelineSummary, PipelineView
from conveyor.app.dora import DoraView, empty_dora
from conveyor.app.hooks import HookDelivery
from conveyor.app.logs import LogTail
from conveyor.app.server_views import (
    ActionName,
    ActionResult,
    CommitView,
    DiffView,
    EnvironmentDetail,
    EnvironmentSummary,
    ServiceDiff,
)
from conveyor.app.views import (
    AgentView,
    ReleaseImage,
    ReleaseView,
    RolloutView,
    RouterView,
    ServiceView,
    StatusView,
    TimelineEntry,
    TimelineView,
)
from conveyor.errors import ActionRefused, NotFound, UnknownEnvironment
from conveyor.model.access import Principal
from conveyor.model.events import Event, EventKind, Subject
from conveyor.model.logs import LEVELS, LogLabels, LogLevel, LogQuery, LogRecord
from conveyor.model.release import RolloutKind


@dataclass
class MemoryEnvironment:
    name: str
    branch: str | None = None
    promote_from: str | None = None
    protected: bool = False
    needs_approval: bool = False
    suspended: bool = False
    desired_commit: str | None = None
    releases: list[ReleaseView] = field(default_factory=list)  # oldest first
    rollouts: list[RolloutView] = field(default_factory=list)  # oldest first
    current: int | None = None
    pipelines: dict[int, PipelineSummary] = field(default_factory=dict)
    jobs: dict[int, list[JobView]] = field(default_factory=dict)  # by pipeline id
    logs: dict[int, JobLog] = field(default_factory=dict)  # by job id
    approvals: set[int] = field(default_factory=set)
    log_records: list[LogRecord] = field(default_factory=list)  # oldest first
    graph: GraphView | None = None  # pipeline_graph
    artifact_files: dict[tuple[int, str], Path] = field(default_factory=dict)  # (job, path)

    def release(self, number: int) -> ReleaseView:
        for r in self.releases:
            if r.number == number:
                return r
        raise NotFound(f"{self.name}: no release {number}")

    @property
    def serving(self) -> ReleaseView | None:
        return None if self.current is None else self.release(self.current)


@dataclass
class InMemoryBackend:
    project: str = "app"
    envs: dict[str, MemoryEnvironment] = field(default_factory=dict)
    event_log: list[Event] = field(default_factory=list)
    delivered: list[HookDelivery] = field(default_factory=list)
    commits: dict[str, CommitView] = field(default_factory=dict)  # what `commit` finds
    fail_hooks: bool = False  # hook_received raises, as a controller that crashed would
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _log_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # building the state tests start from ---------------------------------------------------

    def add_environment(self, name: str, **kw: Any) -> MemoryEnvironment:
        env = MemoryEnvironment(name=name, **kw)
        self.envs[name] = env
        return env

    def deploy(self, env: str, commit: str | None, images: dict[str, str]) -> ReleaseView:
        """A release of `images` at `commit`, rolled out successfully to `env`."""
        e = self._env(env)
        with self._lock:
            r = self._new_release(e, commit, images)
            self._rollout(e, "deploy", r.number, "controller", f"commit {commit}")
        return r

    def add_pipeline(
        self, env: str, sha: str, status: str, jobs: dict[str, tuple[str, str]]
    ) -> PipelineSummary:
        """A finished pipeline at `sha` with `jobs` {name: (status, log text)}."""
        e = self._env(env)
        pid = next(self._ids)
        now = time.time()
        p = PipelineSummary(
            id=pid, ref=e.branch, sha=sha, status=status, started_at=now, duration=1.0, tests={}
        )
        e.pipelines[pid] = p
        e.jobs[pid] = []
        for name, (job_status, text) in jobs.items():
            jid = next(self._ids)
            e.jobs[pid].append(_job(jid, name, job_status))
            e.logs[jid] = JobLog(job_id=jid, name=name, text=text)
        self._emit(
            "pipeline.finished", f"pipeline {pid} {status}", e.name, commit=sha, pipeline=pid
        )
        return p

    # ServerBackend: reading ----------------------------------------------------------------

    def environments(self) -> list[EnvironmentSummary]:
        return [self._summary(e) for e in self.envs.values()]

    def environment(self, env: str) -> EnvironmentDetail:
        e = self._env(env)
        return EnvironmentDetail(
            environment=self._summary(e),
            desired_commit=e.desired_commit,
            approvals=sorted(e.approvals),
            status=self._status(e),
        )

    def releases(self, env: str) -> list[ReleaseView]:
        return list(reversed(self._env(env).releases))

    def rollouts(self, env: str) -> list[RolloutView]:
        return list(reversed(self._env(env).rollouts))

    def pipelines(self, env: str) -> list[PipelineSummary]:
        return sorted(self._env(env).pipelines.values(), key=lambda p: -p.id)

    def jobs(self, env: str, pipeline: int) -> list[JobView]:
        e = self._env(env)
        if pipeline not in e.jobs:
            raise NotFound(f"{env}: no pipeline {pipeline}")
        return e.jobs[pipeline]

    def job_log(self, env: str, job: int) -> JobLog:
        e = self._env(env)
        if job not in e.logs:
            raise NotFound(f"{env}: no job {job}")
        return e.logs[job]

    def pipeline_page(self, env: str, before: int | None, limit: int) -> list[PipelineSummary]:
        older = [p for p in self.pipelines(env) if before is None or p.id < before]
        return older[:limit]

    def pipeline(self, env: str, pipeline: int) -> PipelineView:
        e = self._env(env)
        p = e.pipelines.get(pipeline)
        if p is None:
            raise NotFound(f"{env}: no pipeline {pipeline}")
        return PipelineView(
            id=p.id,
            ref=p.ref,
            sha=p.sha,
            source="push",
            status=p.status,
            started_at=p.started_at,
            finished_at=None if p.status == "running" else p.started_at + (p.duration or 0.0),
            duration=p.duration,
            executor="docker",
            tests=p.tests,
            coverage=None,
            jobs=e.jobs[pipeline],
        )

    def pipeline_graph(self, env: str, sha: str | None = None) -> GraphView | None:
        return self._env(env).graph

    def artifact_file(self, env: str, job: int, path: str) -> Path:
        found = self._env(env).artifact_files.get((job, path))
        if found is None:
            raise NotFound(f"{env}: job {job} kept no file {path!r}")
        return found

    def commit_timeline(self, env: str, sha: str, newest: int | None = None) -> TimelineView:
        for view in self.timeline(env, 100):
            if view.commit is not None and sha and view.commit.startswith(sha):
                return view
        raise NotFound(f"{env}: no commit {sha}")

    def cancel_pipeline(self, env: str, pipeline: int, actor: Principal) -> ActionResult:
        e = self._env(env)
        p = e.pipelines.get(pipeline)
        if p is None:
            raise NotFound(f"{env}: no pipeline {pipeline}")
        if p.status != "running":
            raise ActionRefused(f"pipeline #{pipeline} is {p.status}, not running")
        with self._lock:
            e.pipelines[pipeline] = p.model_copy(update={"status": "canceled"})
            self._emit_locked(
                "pipeline.canceled",
                f"pipeline {pipeline} canceled by {actor.name}",
                env,
                pipeline=pipeline,
            )
        return self._result("cancel", env, f"pipeline #{pipeline} is being canceled")

    def retry_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        return self._rerun("retry", env, job, actor)

    def play_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        return self._rerun("play", env, job, actor)

    def _rerun(self, kind: ActionName, env: str, job: int, actor: Principal) -> ActionResult:
        """In memory, a job run again succeeds at once: a retry adds an attempt, a play runs
        the manual job itself; the pipeline is then `success` when no latest job failed."""
        e = self._env(env)
        found = [(pid, j) for pid, jobs in e.jobs.items() for j in jobs if j.id == job]
        if not found:
            raise NotFound(f"{env}: no job {job}")
        pid, j = found[0]
        pl = e.pipelines[pid]
        latest = {x.name: x for x in e.jobs[pid]}
        if pl.status == "running":
            raise ActionRefused(f"pipeline #{pid} is running")
        if latest[j.name].id != j.id:
            raise ActionRefused(f"job #{job} is not the latest attempt of {j.name}")
        wanted = ("failed", "canceled") if kind == "retry" else ("manual",)
        if j.status not in wanted:
            raise ActionRefused(f"job {j.name} is {j.status}: it cannot be {kind}ed")
        with self._lock:
            done = j.model_copy(
                update={"status": "success", "exit_code": 0, "failure_reason": None}
            )
            if kind == "retry":
                done = done.model_copy(
                    update={"id": next(self._ids), "attempt": j.attempt + 1, "retry_of": j.id}
                )
                e.jobs[pid].append(done)
            else:
                e.jobs[pid] = [done if x.id == j.id else x for x in e.jobs[pid]]
            e.logs[done.id] = JobLog(job_id=done.id, name=j.name, text=f"{kind} by {actor.name}")
            latest[j.name] = done
            bad = any(x.status in ("failed", "canceled") for x in latest.values())
            e.pipelines[pid] = pl.model_copy(update={"status": "failed" if bad else "success"})
            self._emit_locked(
                "job.finished", f"{j.name} success ({kind})", env, pipeline=pid, job=done.id
            )
        return self._result(kind, env, f"job #{job} ({j.name}): {kind} started")

    def dora(self, env: str, since: str, until: float | None = None) -> DoraView:
        e = self._env(env)
        return empty_dora(self._project(e), env, since, until)

    def timeline(self, env: str, limit: int = 10) -> list[TimelineView]:
        e = self._env(env)
        views = []
        for r in reversed(e.releases):
            ro = [x for x in e.rollouts if x.to_release == r.number]
            entries = [
                TimelineEntry(
                    at=x.started_at,
                    duration=x.duration,
                    what="rollout",
                    project=self._project(e),
                    id=x.id,
                    title=f"{x.kind} to release {r.number}",
                    status=x.status,
                )
                for x in ro
            ]
            views.append(
                TimelineView(
                    commit=r.commit,
                    subject=f"release {r.number}",
                    pipelines=[],
                    releases=[],
                    entries=entries,
                )
            )
        return views[:limit]

    def diff(self, env: str) -> DiffView:
        e = self._env(env)
        running = e.serving
        in_sync = e.desired_commit is None or (
            running is not None and running.commit == e.desired_commit
        )
        services = []
        if not in_sync and running is not None:
            services = [
                ServiceDiff(
                    service=name,
                    desired_image=None,
                    running_image=img.image,
                    desired_replicas=1,
                    running_replicas=1,
                    differences=[f"commit {running.commit} → {e.desired_commit}"],
                )
                for name, img in running.services.items()
            ]
        return DiffView(
            environment=env,
            desired_commit=e.desired_commit,
            running_commit=running.commit if running else None,
            in_sync=in_sync,
            services=services,
        )

    def events(self, after: int | None, limit: int) -> list[Event]:
        with self._lock:
            return [e for e in self.event_log if after is None or e.id > after][:limit]

    def add_log(
        self,
        env: str,
        message: str,
        *,
        service: str = "web",
        replica: str = "web-1",
        release: int | None = 1,
        level: LogLevel | None = None,
        fields: dict[str, str] | None = None,
        ts: float | None = None,
        host: str | None = None,
    ) -> LogRecord:
        """A line the environment's `replica` wrote (on fleet host `host`; ids shared by
        every environment)."""
        e = self._env(env)
        with self._lock:
            record = LogRecord(
                id=next(self._log_ids),
                ts=time.time() if ts is None else ts,
                labels=LogLabels(
                    project=self._project(e),
                    environment=env,
                    service=service,
                    replica=replica,
                    release=release,
                    container=f"c-{replica}",
                    host=host,
                ),
                message=message,
                level=level,
                fields=fields or {},
            )
            e.log_records.append(record)
        return record

    def logs(self, env: str, query: LogQuery) -> list[LogRecord]:
        e = self._env(env)
        with self._lock:
            found = [r for r in reversed(e.log_records) if _matches(r, query)]
        return found[: query.limit]

    def log_tail(self, env: str, query: LogQuery, after: int | None, limit: int) -> LogTail:
        e = self._env(env)
        with self._lock:
            if after is None:
                last = max((r.id for r in e.log_records), default=0)
                return LogTail(records=[], position=last)
            found = [r for r in e.log_records if r.id > after and _matches(r, query)][:limit]
        return LogTail(records=found, position=found[-1].id if found else after)

    def last_event_id(self) -> int | None:
        with self._lock:
            return self.event_log[-1].id if self.event_log else None

    def commit(self, env: str, sha: str) -> CommitView:
        self._env(env)
        found = self.commits.get(sha)
        if found is None:
            raise NotFound(f"no commit {sha} in {env}'s repository")
        return found

    # ServerBackend: acting -----------------------------------------------------------------

    def promote(self, env: str, source: str, actor: Principal) -> ActionResult:
        target, src = self._env(env), self._env(source)
        self._movable(target)
        release = src.serving
        if release is None:
            raise ActionRefused(f"{source} serves no release to promote")
        if target.needs_approval and release.number not in target.approvals:
            raise ActionRefused(
                f"{env} needs an approval of {source}'s release {release.number} first"
            )
        images = {k: v.image for k, v in release.services.items()}
        with self._lock:
            new = self._new_release(target, release.commit, images)
            rid = self._rollout(target, "deploy", new.number, actor.name, f"promoted from {source}")
        return self._result("promote", env, f"promoting {source}'s release", new.number, rid)

    def rollback(self, env: str, to_release: int | None, actor: Principal) -> ActionResult:
        e = self._env(env)
        self._movable(e)
        if to_release is None:
            earlier = [r.number for r in e.releases if e.current and r.number < e.current]
            if not earlier:
                raise ActionRefused(f"{env} has no earlier release to roll back to")
            to_release = earlier[-1]
        e.release(to_release)
        with self._lock:
            rid = self._rollout(e, "rollback", to_release, actor.name, "rollback")
        return self._result("rollback", env, f"rolled back to {to_release}", to_release, rid)

    def suspend(self, env: str, actor: Principal) -> ActionResult:
        e = self._env(env)
        e.suspended = True
        self._emit("rollout.note", f"{env} suspended by {actor.name}", env, actor=actor.name)
        return self._result("suspend", env, "suspended: no deploys, no drift correction")

    def resume(self, env: str, actor: Principal) -> ActionResult:
        e = self._env(env)
        e.suspended = False
        self._emit("rollout.note", f"{env} resumed by {actor.name}", env, actor=actor.name)
        return self._result("resume", env, "resumed")

    def approve(self, env: str, release: int, actor: Principal) -> ActionResult:
        e = self._env(env)
        if e.promote_from is None:
            raise ActionRefused(f"{env} is not promoted into: nothing to approve")
        self._env(e.promote_from).release(release)
        e.approvals.add(release)
        return self._result("approve", env, f"release {release} approved", release)

    def hook_received(self, delivery: HookDelivery) -> None:
        if self.fail_hooks:
            raise RuntimeError("the controller failed while taking the delivery")
        with self._lock:
            self.delivered.append(delivery)

    # helpers -------------------------------------------------------------------------------

    def _env(self, name: str) -> MemoryEnvironment:
        if name not in self.envs:
            raise UnknownEnvironment(f"no environment {name!r} in conveyor.yaml")
        return self.envs[name]

    def _project(self, e: MemoryEnvironment) -> str:
        return f"{self.project}-{e.name}"

    @staticmethod
    def _movable(e: MemoryEnvironment) -> None:
        if e.suspended:
            raise ActionRefused(f"{e.name} is suspended: resume it first")

    def _summary(self, e: MemoryEnvironment) -> EnvironmentSummary:
        serving = e.serving
        return EnvironmentSummary(
            name=e.name,
            branch=e.branch,
            promote_from=e.promote_from,
            protected=e.protected,
            suspended=e.suspended,
            state="suspended" if e.suspended else "serving" if serving else "empty",
            release=serving.number if serving else None,
            commit=serving.commit if serving else None,
        )

    def _status(self, e: MemoryEnvironment) -> StatusView | None:
        serving = e.serving
        if serving is None:
            return None
        return StatusView(
            project=self._project(e),
            release=serving.number,
            commit=serving.commit,
            router=RouterView(running=True, stats_url=None),
            agent=AgentView(running=True, pid=None),
            services=[
                ServiceView(
                    name=name,
                    desired_replicas=1,
                    running_replicas=1,
                    image=img.image,
                    spec_hash=img.spec_hash,
                    url=None,
                    replicas=[],
                )
                for name, img in serving.services.items()
            ],
        )

    def _new_release(
        self, e: MemoryEnvironment, commit: str | None, images: dict[str, str]
    ) -> ReleaseView:
        number = len(e.releases) + 1
        r = ReleaseView(
            number=number,
            created_at=time.time(),
            commit=commit,
            services={k: ReleaseImage(image=v, spec_hash=f"h-{v}") for k, v in images.items()},
        )
        e.releases.append(r)
        self._emit_locked("release.created", f"release {number}", e.name, release=number)
        return r

    def _rollout(
        self, e: MemoryEnvironment, kind: RolloutKind, to: int, actor: str, reason: str
    ) -> int:
        rid = len(e.rollouts) + 1
        now = time.time()
        e.rollouts.append(
            RolloutView(
                id=rid,
                kind=kind,
                from_release=e.current,
                to_release=to,
                status="succeeded",
                started_at=now,
                finished_at=now,
                duration=0.0,
                actor=actor,
                reason=reason,
                error=None,
            )
        )
        e.current = to
        self._emit_locked(
            "rollout.succeeded",
            f"rollout {rid} to release {to}",
            e.name,
            actor=actor,
            release=to,
            rollout=rid,
        )
        return rid

    def _emit(self, kind: EventKind, message: str, env: str, **subject: Any) -> Event:
        with self._lock:
            return self._emit_locked(kind, message, env, **subject)

    def _emit_locked(self, kind: EventKind, message: str, env: str, **subject: Any) -> Event:
        actor = subject.pop("actor", "controller")
        event = Event(
            id=len(self.event_log) + 1,
            kind=kind,
            message=message,
            actor=actor,
            subject=Subject(project=f"{self.project}-{env}", environment=env, **subject),
        )
        self.event_log.append(event)
        return event

    @staticmethod
    def _result(
        action: ActionName,
        env: str,
        message: str,
        release: int | None = None,
        rollout: int | None = None,
    ) -> ActionResult:
        return ActionResult(
            action=action, environment=env, message=message, release=release, rollout=rollout
        )


def _job(jid: int, name: str, status: str) -> JobView:
    return JobView(
        id=jid,
        name=name,
        stage="test",
        status=status,
        when="on_success",
        allow_failure=False,
        attempt=1,
        retry_of=None,
        duration=1.0,
        exit_code=0 if status == "success" else 1,
        failure_reason=None if status == "success" else "script_failure",
        executor="docker",
        coverage=None,
        tests={},
        artifacts=None,
        environment=None,
    )


def _matches(r: LogRecord, q: LogQuery) -> bool:
    """The store's filters, in memory (words: case-insensitive, as whole words)."""
    labels = r.labels
    for wanted, value in (
        (q.services, labels.service),
        (q.replicas, labels.replica),
        (q.hosts, labels.host),
        (q.streams, labels.stream),
    ):
        if wanted and value not in wanted:
            return False
    if q.release is not None and labels.release != q.release:
        return False
    if q.level is not None and (r.level is None or LEVELS.index(r.level) < LEVELS.index(q.level)):
        return False
    if any(r.fields.get(k) != v for k, v in q.fields.items()):
        return False
    if q.since is not None and r.ts < q.since:
        return False
    if q.until is not None and r.ts > q.until:
        return False
    words = (r.message + " " + " ".join(r.fields.values())).lower().split()
    for term in q.text.lower().split():
        if term.endswith("*"):
            if not any(w.startswith(term[:-1]) for w in words):
                return False
        elif term not in words:
            return False
    return True
