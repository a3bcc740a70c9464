"""The GitOps controller: brings every environment of `conveyor.yaml` to what git says, and
answers the HTTP API (`server.backend.ServerBackend`).

One worker thread does everything that changes the world, one environment at a time: fetch the
source; read `conveyor.yaml` at the head of its default branch; for each environment whose
branch moved, check the commit out into the environment's own work tree, verify its signature
(if the environment asks), run its `.gitlab-ci.yml` with the CI engine, and roll the compose
app out as project `<name>-<environment>` with the environment's overrides. A failed pipeline
or rollout leaves the previous release serving and is not retried until the branch moves.
Between syncs it hosts each environment's reconciler (healing, as `conveyor agent` does),
every `heal_interval` seconds; each correction is reported as a `drift.corrected` event.

What it remembers per environment (`gitops.sync.EnvProgress`) sits in the data directory, so a
restarted server neither redeploys what serves nor retries what failed; a sync a crash cut
short is done again (pipelines it left running are marked `interrupted` first), and the
deploy engine recovers an interrupted rollout as it always does.

Not done yet (issue 9): promotion and its gates, rollback into git, `diff` per service, job
logs through the API; the API answers 409 for those actions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from conveyor.app import ci as ci_app
from conveyor.app import deploy as deploy_app
from conveyor.app.ci_views import JobLog, JobView, PipelineSummary
from conveyor.app.hooks import HookDelivery
from conveyor.app.project import Project
from conveyor.app.server_views import (
    ActionResult,
    DiffView,
    EnvironmentDetail,
    EnvironmentState,
    EnvironmentSummary,
)
from conveyor.app.views import ReleaseView, RolloutView, TimelineView
from conveyor.deploy.reconciler import Reconciler
from conveyor.errors import (
    ActionRefused,
    ConveyorError,
    LockBusy,
    NotFound,
    UnknownEnvironment,
)
from conveyor.gitops.drift import drift_event
from conveyor.gitops.notify import Dispatcher, build_dispatcher
from conveyor.gitops.source import Source, SshAccess
from conveyor.gitops.sync import EnvProgress, decide, head_of
from conveyor.model.access import Principal
from conveyor.model.environments import ConveyorConfig, EnvironmentSpec
from conveyor.model.events import Event, EventKind, Level, Subject
from conveyor.model.notifications import NotificationsSpec
from conveyor.spec.conveyor_file import FILE_NAME, parse_conveyor
from conveyor.spec.overrides import apply_overrides
from conveyor.store.timeline import Timeline

ACTOR = "server"
MAX_EVENTS = 10_000  # kept in memory for the API's event list and stream
DEFAULT_WAIT = 60.0  # seconds between fetches when conveyor.yaml cannot be read
INTERRUPTED = "the server stopped while it ran"
HEAL_INTERVAL = 5.0  # seconds between heal passes (drift correction) of serving environments


class Controller:
    def __init__(
        self,
        source_url: str,
        data_dir: Path,
        environ: Mapping[str, str],
        *,
        executor: ci_app.Executor = "docker",
        registry: bool = True,
        ssh: SshAccess | None = None,
        on_synced: Callable[[float], None] | None = None,
        heal_interval: float = HEAL_INTERVAL,
    ) -> None:
        """`on_synced(started)` is called after each fetch-and-sync pass with the time (UNIX
        seconds) the pass began: the webhook deliveries received before it are covered (the
        server marks them done). `heal_interval`: seconds between heal passes."""
        self.data_dir = data_dir
        self.source = Source(source_url, data_dir / "source", ssh=ssh)
        self.name = _repo_name(source_url)
        self.environ = dict(environ)
        self.executor = executor
        self.registry = registry
        self.on_synced = on_synced
        self.heal_interval = heal_interval
        self.config: ConveyorConfig | None = None
        self.config_error = ""
        self._wake = threading.Event()
        self._work = threading.RLock()  # one change to the world at a time
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._events_lock = threading.Lock()
        self._next_id = 1
        self._reconcilers: dict[str, tuple[str, Reconciler]] = {}
        self._notify: tuple[NotificationsSpec, Dispatcher] | None = None
        self._timeline = Timeline(Subject(project=self.name), None, ACTOR, [self._collect])

    # the worker ------------------------------------------------------------------------------

    def close(self) -> None:
        """Send the notifications still queued and stop their channels."""
        if self._notify is not None:
            self._notify[1].close()
            self._notify = None

    def _notifications(self, spec: NotificationsSpec) -> None:
        """(Re)build the notification channels when conveyor.yaml's section changes."""
        if self._notify is not None and self._notify[0] == spec:
            return
        self.close()
        if spec.empty:
            return
        try:
            self._notify = (spec, build_dispatcher(spec, self.environ))
        except ConveyorError as e:  # a secret's variable is unset: say so, keep deploying
            self._emit("source.error", f"notifications are off: {e}", "error")

    def run(self, stopping: threading.Event) -> None:
        """Until `stopping` is set: sync every poll interval (a webhook wakes it at once),
        heal every `heal_interval`. First, what a crash of the last run left is marked."""
        self._guarded(self.mark_interrupted)
        next_sync = 0.0
        while not stopping.is_set():
            if self._wake.is_set() or time.monotonic() >= next_sync:
                self._wake.clear()  # a wake during the pass makes another pass
                self._guarded(self.sync_all)
                next_sync = time.monotonic() + self._poll_interval()
            self._guarded(self.heal_all)
            self._wake.wait(max(0.0, min(self.heal_interval, next_sync - time.monotonic())))

    def _guarded(self, step: Callable[[], None]) -> None:
        """A bug in one pass must not stop the worker (the API would answer, nothing would
        move): say so as an event and go on with the next pass."""
        try:
            step()
        except Exception as e:
            self._emit("reconciler.error", f"{type(e).__name__}: {e}", "error", data={"bug": "1"})

    def wake(self) -> None:
        self._wake.set()

    def _poll_interval(self) -> float:
        if self.config is None or not self.config.environments:
            return DEFAULT_WAIT
        return min(env.poll_interval for env in self.config.environments.values())

    def sync_all(self) -> None:
        """Fetch, read conveyor.yaml, and bring each branch-fed environment to its branch."""
        with self._work:
            started = time.time()
            try:
                fetched = self.source.fetch()
            except ConveyorError as e:
                self._emit("source.error", f"fetching {self.source.shown}: {e}", "error")
                return
            if fetched.changed:
                self._emit("source.fetched", f"fetched {len(fetched.changed)} changed ref(s)")
            self.config = self._read_config()
            if self.config is None:
                return
            self._notifications(self.config.notifications)
            heads = self.source.heads()
            for name in self.config.promotion_order():
                spec = self.config.environments[name]
                self._sync(spec, head_of(spec, heads))
            if self.on_synced is not None:
                self.on_synced(started)

    def _read_config(self) -> ConveyorConfig | None:
        head = self.source.default_branch_head()
        if head is None:
            self.config_error = "the source has no commit yet"
            return None
        text = self.source.read_file(head, FILE_NAME)
        if text is None:
            self.config_error = f"{FILE_NAME}: no such file at the root of {head[:12]}"
            self._emit("source.error", self.config_error, "error")
            return None
        try:
            config = parse_conveyor(text, FILE_NAME)
        except ConveyorError as e:
            self.config_error = str(e)
            self._emit("source.error", f"{FILE_NAME} at {head[:12]}: {e}", "error")
            return None
        self.config_error = ""
        return config

    def _sync(self, spec: EnvironmentSpec, head: str | None) -> None:
        progress = self._progress(spec.name)
        if progress.desired != head:
            progress = self._save(spec.name, progress.model_copy(update={"desired": head}))
        if decide(spec, progress, head) != "sync":
            return
        assert head is not None
        short = head[:12]
        env = spec.name
        self._emit("sync.started", f"{env}: bringing in {short}", environment=env, commit=head)
        self._save(env, progress.model_copy(update={"syncing": head}))
        try:
            reason = self._bring_in(spec, head)
        except ConveyorError as e:
            reason = str(e)
        progress = self._progress(env)
        if reason:
            self._save(
                env,
                progress.model_copy(update={"failed": head, "reason": reason, "syncing": None}),
            )
            self._emit(
                "sync.failed",
                f"{env}: {short} not deployed: {reason}",
                "error",
                environment=env,
                commit=head,
            )
            return
        self._save(
            env,
            progress.model_copy(
                update={"deployed": head, "failed": None, "reason": "", "syncing": None}
            ),
        )
        self._emit("sync.succeeded", f"{env}: {short} serving", environment=env, commit=head)

    def _bring_in(self, spec: EnvironmentSpec, head: str) -> str:
        """Check out, verify, run the pipeline, roll out. Returns why it did not, or ""."""
        if spec.verify is not None:
            verdict = self.source.verify(head, spec.verify)
            if not verdict.ok:
                self._emit(
                    "signature.rejected",
                    f"{spec.name}: {head[:12]} not deployed: {verdict.reason}",
                    "error",
                    environment=spec.name,
                    commit=head,
                    data={"reason": verdict.reason},
                )
                return f"signature: {verdict.reason}"
        work = self._checkout(spec.name, head)
        pipeline_file = work / ".gitlab-ci.yml"
        if pipeline_file.exists():
            ran = ci_app.run(
                pipeline_file,
                executor=self.executor,
                ref=spec.branch,
                registry=self.registry,
                subscribers=[self._collect],
                environ=self._environ(spec, head),
            )
            if ran.pipeline is not None and ran.pipeline.status != "success":
                return f"pipeline {ran.pipeline.id} {ran.pipeline.status}"
        project = self._project(spec, head)
        fresh = project.engine().store.current_release() is None
        outcome = (
            deploy_app.up(project, agent=False).outcome
            if fresh
            else deploy_app.deploy(project, []).outcome
        )
        if not outcome.ok:
            return f"rollout {outcome.rollout} {outcome.status}: {outcome.error or ''}".rstrip(": ")
        return ""

    def mark_interrupted(self) -> None:
        """After a crash: the pipelines the last run left running are marked `interrupted`.
        The policy is to run again: the environment still names the commit as `syncing`, so
        the first sync brings it in again (unless the branch moved on: latest commit wins).
        A rollout a crash cut short is the deploy engine's to recover, at that sync."""
        root = self.data_dir / "environments"
        if not root.is_dir():
            return
        for env_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            env = env_dir.name
            pipeline_file = self._work_tree(env) / ".gitlab-ci.yml"
            if not pipeline_file.exists():
                continue
            try:
                ids = ci_app.interrupt_unfinished(pipeline_file, INTERRUPTED)
            except ConveyorError as e:
                self._emit("reconciler.error", f"{env}: {e}", "error", environment=env)
                continue
            commit = self._progress(env).syncing
            for pid in ids:
                self._timeline.emit(
                    "pipeline.interrupted",
                    f"{env}: pipeline #{pid} was interrupted: {INTERRUPTED}"
                    + ("; its commit is brought in again" if commit else ""),
                    "warning",
                    {"reason": INTERRUPTED},
                    environment=env,
                    commit=commit,
                    pipeline=pid,
                )

    def heal_all(self) -> None:
        """One reconciler tick per serving environment (replace crashed replicas, keep HAProxy
        up), skipped for suspended ones."""
        if self.config is None:
            return
        with self._work:
            for name, spec in self.config.environments.items():
                progress = self._progress(name)
                if progress.suspended or progress.deployed is None:
                    continue
                try:
                    self._reconciler(spec, progress.deployed).tick()
                except LockBusy:
                    continue  # a command works on the project: look again next pass
                except ConveyorError as e:
                    self._emit("reconciler.error", f"{name}: {e}", "error", environment=name)

    def _reconciler(self, spec: EnvironmentSpec, commit: str) -> Reconciler:
        known = self._reconcilers.get(spec.name)
        if known is None or known[0] != commit:
            known = (commit, deploy_app.reconciler(self._project(spec, commit)))
            self._reconcilers[spec.name] = known
        return known[1]

    # environments on this host -----------------------------------------------------------------

    def _env_dir(self, env: str) -> Path:
        return self.data_dir / "environments" / env

    def _work_tree(self, env: str) -> Path:
        # Named after the repository: Compose's default project name is the directory's.
        return self._env_dir(env) / self.name

    def _checkout(self, env: str, sha: str) -> Path:
        work = self._work_tree(env)
        if work.exists() and any(work.iterdir()):
            return self.source.move_checkout(work, sha)
        work.parent.mkdir(parents=True, exist_ok=True)
        return self.source.checkout(sha, work)

    def _environ(self, spec: EnvironmentSpec, head: str) -> dict[str, str]:
        return {
            **self.environ,
            "CI_COMMIT_SHA": head,
            "CI_ENVIRONMENT_NAME": spec.name,
        }

    def _project(self, spec: EnvironmentSpec, head: str) -> Project:
        work = self._work_tree(spec.name)
        project = Project.open(
            Path(spec.compose), None, self._environ(spec, head), cwd=work, profiles=()
        )
        project.subscribe(self._collect)
        loaded = project.loaded()
        project._loaded = dataclasses.replace(loaded, stack=apply_overrides(loaded.stack, spec))
        return project

    def _served_project(self, env: str) -> Project | None:
        spec = self._spec(env)
        progress = self._progress(env)
        if progress.deployed is None or not self._work_tree(env).exists():
            return None
        return self._project(spec, progress.deployed)

    # progress --------------------------------------------------------------------------------

    def _progress_file(self, env: str) -> Path:
        return self._env_dir(env) / "progress.json"

    def _progress(self, env: str) -> EnvProgress:
        path = self._progress_file(env)
        if not path.exists():
            return EnvProgress()
        return EnvProgress.model_validate_json(path.read_text(encoding="utf-8"))

    def _save(self, env: str, progress: EnvProgress) -> EnvProgress:
        path = self._progress_file(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(progress.model_dump(mode="json")), encoding="utf-8")
        os.replace(tmp, path)  # a crash leaves the old file or the new one, never half
        return progress

    # events ----------------------------------------------------------------------------------

    def _collect(self, event: Event) -> None:
        if not event.durable:
            return
        if event.kind == "heal.succeeded":  # told once, as the drift it corrected
            event = drift_event(event)
        if self._notify is not None:
            self._notify[1](event)  # queued: never blocks, never raises
        with self._events_lock:
            self._events.append(event.model_copy(update={"id": self._next_id}))
            self._next_id += 1

    def _emit(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        *,
        environment: str | None = None,
        commit: str | None = None,
        data: dict[str, str] | None = None,
    ) -> None:
        self._timeline.emit(kind, message, level, data, environment=environment, commit=commit)

    # ServerBackend: reading ------------------------------------------------------------------

    def _spec(self, env: str) -> EnvironmentSpec:
        if self.config is None or env not in self.config.environments:
            raise UnknownEnvironment(f"no environment {env!r} in {FILE_NAME}")
        return self.config.environments[env]

    def _summary(self, spec: EnvironmentSpec) -> EnvironmentSummary:
        progress = self._progress(spec.name)
        state: EnvironmentState = "empty"
        if progress.suspended:
            state = "suspended"
        elif progress.syncing:
            state = "syncing"
        elif progress.failed is not None and progress.failed == progress.desired:
            state = "failed"
        elif progress.deployed is not None:
            state = "serving"
        release = None
        project = self._served_project(spec.name)
        if project is not None:
            current = project.engine().store.current_release()
            release = current.number if current else None
        return EnvironmentSummary(
            name=spec.name,
            branch=spec.branch,
            promote_from=spec.promote_from,
            protected=spec.protected,
            suspended=progress.suspended,
            state=state,
            release=release,
            commit=progress.deployed,
        )

    def environments(self) -> list[EnvironmentSummary]:
        if self.config is None:
            return []
        order = self.config.promotion_order()
        return [self._summary(self.config.environments[name]) for name in order]

    def environment(self, env: str) -> EnvironmentDetail:
        spec = self._spec(env)
        project = self._served_project(env)
        return EnvironmentDetail(
            environment=self._summary(spec),
            desired_commit=self._progress(env).desired,
            status=deploy_app.status(project) if project is not None else None,
        )

    def releases(self, env: str) -> list[ReleaseView]:
        self._spec(env)
        project = self._served_project(env)
        return deploy_app.history(project, 50).releases if project is not None else []

    def rollouts(self, env: str) -> list[RolloutView]:
        self._spec(env)
        project = self._served_project(env)
        return deploy_app.history(project, 50).rollouts if project is not None else []

    def _pipeline_file(self, env: str) -> Path | None:
        self._spec(env)
        path = self._work_tree(env) / ".gitlab-ci.yml"
        return path if path.exists() else None

    def pipelines(self, env: str) -> list[PipelineSummary]:
        path = self._pipeline_file(env)
        return ci_app.history(path, 50).pipelines if path is not None else []

    def jobs(self, env: str, pipeline: int) -> list[JobView]:
        path = self._pipeline_file(env)
        if path is None:
            raise NotFound(f"{env} runs no pipeline")
        return list(ci_app.show(path, pipeline).jobs)

    def job_log(self, env: str, job: int) -> JobLog:
        path = self._pipeline_file(env)
        if path is None:
            raise NotFound(f"{env} runs no pipeline")
        for summary in ci_app.history(path, 50).pipelines:
            for view in ci_app.show(path, summary.id).jobs:
                if view.id == job:
                    return ci_app.logs(path, view.name, summary.id)
        raise NotFound(f"no job {job} in {env}'s pipelines")

    def timeline(self, env: str) -> list[TimelineView]:
        self._spec(env)
        project = self._served_project(env)
        if project is None:
            return []
        from conveyor.app.timeline import timeline

        return [timeline(project, self._progress(env).deployed)]

    def diff(self, env: str) -> DiffView:
        """Commit-level for now: whether the serving commit is the branch's head (per-service
        differences are not computed yet)."""
        self._spec(env)
        progress = self._progress(env)
        return DiffView(
            environment=env,
            desired_commit=progress.desired,
            running_commit=progress.deployed,
            in_sync=progress.desired is not None and progress.desired == progress.deployed,
            services=[],
        )

    def events(self, after: int | None, limit: int) -> list[Event]:
        with self._events_lock:
            found = [e for e in self._events if after is None or e.id > after]
        return found[:limit]

    # ServerBackend: acting -------------------------------------------------------------------

    def promote(self, env: str, source: str, actor: Principal) -> ActionResult:
        self._spec(env)
        raise ActionRefused("promotion is not available yet (issue 9: gates and promotion)")

    def rollback(self, env: str, to_release: int | None, actor: Principal) -> ActionResult:
        self._spec(env)
        raise ActionRefused("rollback through the server is not available yet (issue 9)")

    def approve(self, env: str, release: int, actor: Principal) -> ActionResult:
        self._spec(env)
        raise ActionRefused("approvals are not available yet (issue 9: promotion gates)")

    def suspend(self, env: str, actor: Principal) -> ActionResult:
        return self._set_suspended(env, True, actor)

    def resume(self, env: str, actor: Principal) -> ActionResult:
        result = self._set_suspended(env, False, actor)
        self.wake()  # what git says now is brought in at once
        return result

    def _set_suspended(self, env: str, suspended: bool, actor: Principal) -> ActionResult:
        self._spec(env)
        with self._work:
            progress = self._progress(env)
            self._save(env, progress.model_copy(update={"suspended": suspended}))
        word = "suspended" if suspended else "resumed"
        self._emit(
            "environment.suspended" if suspended else "environment.resumed",
            f"{env} {word} by {actor.name}",
            environment=env,
        )
        return ActionResult(
            action="suspend" if suspended else "resume",
            environment=env,
            message=f"{env} {word}: "
            + ("no deploy or correction until resume" if suspended else "following git again"),
        )

    # ServerBackend: webhooks ------------------------------------------------------------------

    def hook_received(self, delivery: HookDelivery) -> None:
        self.wake()


def _repo_name(url: str) -> str:
    """The repository's name from its URL or path (`/srv/git/shop.git` -> `shop`)."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail.removesuffix(".git") or "app"
