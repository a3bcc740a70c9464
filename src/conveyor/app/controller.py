"""The GitOps controller: brings every environment of `conveyor.yaml` to what git says, and
answers the HTTP API (`server.backend.ServerBackend`).

One worker thread does everything that changes the world, one environment at a time: fetch the
source; read `conveyor.yaml` at the head of its default branch; for each environment whose
branch moved, check the commit out into the environment's own work tree, verify its signature
(if the environment asks), run its `.gitlab-ci.yml` with the CI engine, and roll the compose
app out as project `<name>-<environment>` with the environment's overrides. A failed pipeline
or rollout leaves the previous release serving and is not retried until the branch moves; a
rollout a fleet refuses because no app host takes replicas (`NoAppHostUp`) is deferred
instead, and tried again after a backoff or when a host is up again (gitops.deferrals).
Between syncs it hosts each environment's reconciler (healing, as `conveyor agent` does),
every `heal_interval` seconds, and at once (`gitops.wakeups`: a burst is one heal) for the
environment a Docker event names (`runtime.docker_events`: a container of its project died,
stopped, was removed, renamed, paused or turned unhealthy) or whose HAProxy shows something
else than before its last heal (`deploy.router_watch`, looked at every `router_poll`
seconds: HAProxy has no events); each correction is reported as a `drift.corrected` event
saying how it was noticed. Suspended environments are not healed.

Latest commit wins while a pipeline runs: a watcher thread, woken by webhooks and on the poll
interval, fetches and applies GitLab's auto-cancel to the running pipeline when its branch has
a newer commit (app/superseding.py); that commit is then not rolled out, and is reported as
superseded, not failed.

What it remembers per environment (`gitops.sync.EnvProgress`) sits in the data directory, so a
restarted server neither redeploys what serves nor retries what failed; a sync a crash cut
short is done again, or abandoned if the environment's `on_interrupted` says so (what the
pipelines it left running still run is stopped, and they are marked `interrupted`, first), and
the deploy engine recovers an interrupted rollout as it always does.

Acting through the API (same worker lock, so one change at a time): `promote` checks the
target's gates (`gitops.promotion`) against the source environment's serving release and
deploys that commit with the same images; `approve` records an approval for a promotion gate;
`rollback` pushes a pin file (`.conveyor/pins/<env>.json`) on the environment's branch, then
rolls the project back at once; every later pass honours the pin (`gitops.pins`) until a push
deletes or changes it. A `target: kubernetes` environment is not rolled out on this host: its
release is a commit of the rendered manifests to its deploy repository (app.kube_delivery), its
rollback a revert there (with the same pin). `diff` compares the stack at the desired commit
with what runs, per service (`app.env_diff`).

With `auto_promote`, the worker also promotes by itself (`promote_due`, after each sync and
every `PROMOTE_INTERVAL` seconds) once the gates of the target hold for the source's serving
release.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from conveyor.app import ci as ci_app
from conveyor.app import deploy as deploy_app
from conveyor.app import kube_delivery
from conveyor.app import logs as logs_app
from conveyor.app.checks import ChecksController, settings_from, stop_checks
from conveyor.app.ci_views import (
    GraphView,
    InterruptedPipeline,
    JobLog,
    JobView,
    PipelineSummary,
    PipelineView,
)
from conveyor.app.dora import DoraView, dora_report, empty_dora
from conveyor.app.env_diff import service_diffs
from conveyor.app.hooks import HookDelivery
from conveyor.app.kube_secrets import SECRETS_KEY, digest_key
from conveyor.app.kube_views import kube_releases, kube_rollouts
from conveyor.app.logs import LogTail
from conveyor.app.project import Project
from conveyor.app.server_views import (
    ActionResult,
    CommitView,
    DeliveryView,
    DiffView,
    EnvironmentDetail,
    EnvironmentState,
    EnvironmentSummary,
)
from conveyor.app.superseding import Running, Superseded, notice
from conveyor.app.views import ReleaseView, RolloutView, TimelineEntry, TimelineView
from conveyor.ci.run.prepare import ci_store
from conveyor.ci.select.rerun import RerunKind
from conveyor.deploy.engine import Engine
from conveyor.deploy.reconciler import Reconciler
from conveyor.deploy.router_watch import RouterMark, changes, router_mark
from conveyor.errors import (
    ActionRefused,
    ConveyorError,
    LockBusy,
    NotFound,
    SourceError,
    UnknownEnvironment,
)
from conveyor.gitops.deferrals import Deferrals
from conveyor.gitops.drift import drift_event
from conveyor.gitops.kube_releases import History, rollback_plan
from conveyor.gitops.notify import Dispatcher, build_dispatcher
from conveyor.gitops.pins import desired_commit
from conveyor.gitops.promotion import (
    GateFacts,
    failures_since,
    promotion_refusal,
    serving_since,
    unmet_gates,
)
from conveyor.gitops.source import Source, SshAccess
from conveyor.gitops.sync import (
    Approval,
    EnvProgress,
    Promotion,
    Supersession,
    decide,
    head_of,
)
from conveyor.gitops.wakeups import Wakeups
from conveyor.host.registry_api import manifest_digest
from conveyor.model.access import Principal
from conveyor.model.environments import ConveyorConfig, EnvironmentSpec
from conveyor.model.events import Event, EventKind, Level, Subject
from conveyor.model.log_shipping import LogShipping
from conveyor.model.logs import LogQuery, LogRecord, LogSettings
from conveyor.model.notifications import NotificationsSpec
from conveyor.model.pins import Pin, pin_path
from conveyor.model.release import Release
from conveyor.model.stack import Stack
from conveyor.observe.logs.collect import Collector
from conveyor.plan.placement import NoAppHostUp
from conveyor.runtime.docker_events import ContainerEvent, DockerEventWatcher
from conveyor.spec.conveyor_file import FILE_NAME, parse_conveyor
from conveyor.spec.overrides import apply_overrides
from conveyor.spec.pin_file import render_pin
from conveyor.store.database import DB_NAME
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline

ACTOR = "server"
MAX_EVENTS = 100_000  # kept for the API's event list and stream (in memory: the last 10,000)
PRUNE_EVERY = 1_000  # events recorded between two prunings of the journal
DEFAULT_WAIT = 60.0  # seconds between fetches when conveyor.yaml cannot be read
INTERRUPTED = "the server stopped while it ran"
ABANDONED = "interrupted: abandoned by policy"  # on_interrupted: abandon
HEAL_INTERVAL = 5.0  # seconds between heal passes (drift correction) of serving environments
AFTER_BACKOFF = " (once its heal backoff was over)"
ROUTER_POLL = 1.0  # seconds between looks at each environment's HAProxy (it has no events)
BY_INTERVAL = "heal interval"  # how drift a full heal pass corrects was noticed
PROMOTE_INTERVAL = 5.0  # seconds between looks at auto_promote gates (and after each sync)
# Seconds between tries to apply auto-cancel to a pipeline that has not recorded its start yet.
APPLY_RETRY = 0.2
# An SSH private key the server signs its pin commits with (environments that verify
# signatures then accept them from anyone's checkout, not only from this server).
PIN_SIGNING_KEY = "CONVEYOR_PIN_SIGNING_KEY"
PIPELINE_FILE = ".gitlab-ci.yml"
AUTO_PROMOTER = "server (auto_promote)"  # who promotions without a person are by
# The user and password the server asks image registries for digests with (target:
# kubernetes); unset: anonymously (a public registry, or one on the loopback interface).
REGISTRY_USER = "CONVEYOR_REGISTRY_USER"
REGISTRY_PASSWORD = "CONVEYOR_REGISTRY_PASSWORD"  # noqa: S105 (a variable's name)
FLUX_LOOKBACK = 1_000  # events looked through for Flux's word on a delivered commit


class EventJournal(Protocol):
    """Where the controller's events are kept (store.events.EventLog over the server DB)."""

    def append(self, event: Event) -> Event: ...

    def after(self, after: int | None, limit: int) -> list[Event]: ...

    def last_id(self) -> int | None: ...

    def keep_newest(self, count: int) -> None: ...


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
        on_event: Callable[[Event], None] | None = None,
        journal: EventJournal | None = None,
        on_project: Callable[[EnvironmentSpec, Project], None] | None = None,
        docker_events: bool = False,
        router_poll: float = ROUTER_POLL,
        after_heal: Callable[[list[Engine]], object] | None = None,
    ) -> None:
        """`on_synced(started)` is called after each fetch-and-sync pass with the time (UNIX
        seconds) the pass began: the webhook deliveries received before it are covered (the
        server marks them done). `heal_interval`: seconds between heal passes. `on_event`
        sees every durable event (the server logs them); it must not block. `journal` keeps the
        events across restarts (the server database's); without one the last 10,000 are kept
        in memory. `on_project(spec, project)`: each time an environment's project is opened,
        before anything is done to it (the server records that it manages the project).
        `docker_events`: `run` also follows the Docker Engine's events and heals the
        environment one names at once (the server turns it on; tests of the loop alone
        leave it off). `router_poll`: seconds between looks at each environment's HAProxy.
        `after_heal(engines)`: after each heal pass, in the worker, with the engine of every
        environment healed on this host (the server's metrics stack watches them)."""
        self.data_dir = data_dir
        self.source = Source(source_url, data_dir / "source", ssh=ssh)
        self.name = _repo_name(source_url)
        self.environ = dict(environ)
        self.executor = executor
        self.registry = registry
        self.on_synced = on_synced
        self.heal_interval = heal_interval
        self.on_event = on_event
        self.on_project = on_project
        self.docker_events = docker_events
        self.router_poll = router_poll
        self.after_heal = after_heal
        self.config: ConveyorConfig | None = None
        self.config_error = ""
        self._wake = threading.Event()  # a sync pass is asked for (webhook, resume)
        self._stir = threading.Event()  # the worker has something to look at
        self._wakeups = Wakeups()  # early heals asked for by Docker events, HAProxy changes
        self._wakeups_lock = threading.Lock()
        self._noticed: dict[str, str] = {}  # env -> how its heal running now was asked for
        # Syncs refused for want of an app host, tried again soon (gitops.deferrals).
        self._deferrals = Deferrals()
        self._deferrals_lock = threading.Lock()
        self._marks: dict[str, RouterMark] = {}  # env -> its HAProxy as its last heal began
        # The watcher's wake: it looks for a newer commit while the worker runs a pipeline.
        self._look = threading.Event()
        self._running: Running | None = None  # the pipeline the worker runs now
        self._running_lock = threading.Lock()
        self._work = threading.RLock()  # one change to the world at a time
        self._progress_lock = threading.Lock()  # each progress.json read-modify-write whole
        # Held while a work tree is turned to another commit and while one is read: git
        # rewrites the files in place, and a reader (the API) could find no compose.yaml.
        self._trees = threading.RLock()
        self._journal = journal
        self._events: deque[Event] = deque(maxlen=10_000)
        self._events_lock = threading.Lock()
        # pipeline_graph's answers per (environment, commit): a commit's file never changes
        self._graphs: dict[tuple[str, str], GraphView | None] = {}
        self._graphs_lock = threading.Lock()
        self._next_id = 1
        self._reconcilers: dict[str, tuple[str, Reconciler]] = {}
        # Per environment: the commit last looked at, its log store, the settings its
        # collector runs with (x-conveyor.logs, conveyor.yaml's logs:), the collector (None:
        # collection is off, or another process collects).
        self._logs: dict[
            str, tuple[str, Path, tuple[LogSettings, LogShipping], Collector | None]
        ] = {}
        self._logs_lock = threading.Lock()
        self._checkers: dict[str, ChecksController] = {}  # each environment's Nagios
        self._off: set[str] = set()  # environments whose Nagios was stopped: checks are off
        self._notify: tuple[NotificationsSpec, Dispatcher] | None = None
        self._timeline = Timeline(Subject(project=self.name), None, ACTOR, [self._collect])

    # the worker ------------------------------------------------------------------------------

    def close(self) -> None:
        """Send the notifications still queued and stop their channels; stop collecting logs."""
        if self._notify is not None:
            self._notify[1].close()
            self._notify = None
        with self._logs_lock:
            collectors = [c for *_, c in self._logs.values() if c is not None]
            self._logs.clear()
        for c in collectors:
            c.stop()

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
        heal every `heal_interval` and after each sync, heal an environment early when a
        Docker event or a change in its HAProxy names it, and promote what is due every
        `PROMOTE_INTERVAL`. First, what a crash of the last run left is marked."""
        self._guarded(self.mark_interrupted)
        watcher = threading.Thread(
            target=self._watch, args=(stopping,), name="controller-watch", daemon=True
        )
        watcher.start()
        events = (
            DockerEventWatcher(self._docker_event, on_connection=self._docker_connection).start()
            if self.docker_events
            else None
        )
        try:
            self._loop(stopping)
        finally:
            self._look.set()  # the watcher sees `stopping` and ends
            watcher.join(timeout=10)
            if events is not None:
                events.stop()

    def _loop(self, stopping: threading.Event) -> None:
        next_sync = next_heal = next_look = next_promote = 0.0
        while not stopping.is_set():
            self._stir.clear()  # what stirs it from here on is looked at in this round
            with self._deferrals_lock:
                retrying = self._deferrals.take_due(time.monotonic())
            if retrying or self._wake.is_set() or time.monotonic() >= next_sync:
                self._wake.clear()  # a wake during the pass makes another pass
                self._guarded(self.sync_all)
                next_sync = time.monotonic() + self._poll_interval()
                next_heal = next_promote = 0.0  # a heal pass follows every sync pass
            if time.monotonic() >= next_heal:
                with self._wakeups_lock:
                    self._wakeups.covered(time.monotonic())
                self._guarded(self.heal_all)
                self._guarded(self._after_heal)
                self._guarded(self.collect_logs)
                next_heal = time.monotonic() + self.heal_interval
            else:
                if time.monotonic() >= next_look:
                    self._guarded(self._look_at_routers)
                    next_look = time.monotonic() + self.router_poll
                with self._wakeups_lock:
                    due = self._wakeups.take_due(time.monotonic())
                if due:
                    self._guarded(functools.partial(self.heal_all, only=due))
            if time.monotonic() >= next_promote:  # its own pace: the heal interval may be long
                self._guarded(self.promote_due)
                next_promote = time.monotonic() + PROMOTE_INTERVAL
            with self._wakeups_lock:
                early = self._wakeups.next_due()
            with self._deferrals_lock:
                retry = self._deferrals.next_due()
            until = min(next_sync, next_heal, next_look, next_promote)
            for soonest in (early, retry):
                if soonest is not None:
                    until = min(until, soonest)
            self._stir.wait(max(0.0, until - time.monotonic()))

    def _look_at_routers(self) -> None:
        """Each healed environment's HAProxy as it is now against how it was when its last
        heal began: a difference is noted for an early heal."""
        for env, (_, reconciler) in self._reconcilers.items():
            before = self._marks.get(env)
            if before is None:
                continue
            now = router_mark(reconciler.engine.router)
            if now == before:
                continue
            self._marks[env] = now  # noted once; the heal takes a new mark anyway
            said = "; ".join(changes(before, now))
            with self._wakeups_lock:
                self._wakeups.note(env, f"HAProxy: {said}", time.monotonic())

    def _docker_event(self, event: ContainerEvent) -> None:
        """From the watcher's thread: an event of a container of `event.project`. The
        environment serving that project is healed early, unless the event cannot mean drift
        (a container turning healthy)."""
        if not event.drift:
            return
        env = next(
            (
                name
                for name, (_, r) in self._reconcilers.items()
                if r.engine.project == event.project
            ),
            None,
        )
        if env is None:
            return  # another project's (a CI job's, another server's): not ours to heal
        with self._wakeups_lock:
            self._wakeups.note(env, f"Docker event: {event.describe()}", time.monotonic())
        self._stir.set()

    def _docker_connection(self, up: bool, reason: str) -> None:
        """The event stream was lost or is back. While it is lost drift waits for the heal
        interval; once back, every environment is looked at once (events of the time in
        between are not replayed)."""
        if not up:
            return
        with self._wakeups_lock:
            for env in self._reconcilers:
                self._wakeups.note(env, "Docker events followed again", time.monotonic())
        self._stir.set()

    def _guarded(self, step: Callable[[], None]) -> None:
        """A bug in one pass must not stop the worker (the API would answer, nothing would
        move): say so as an event and go on with the next pass."""
        try:
            step()
        except Exception as e:
            self._emit("reconciler.error", f"{type(e).__name__}: {e}", "error", data={"bug": "1"})

    def wake(self) -> None:
        self._wake.set()
        self._stir.set()
        self._look.set()

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
                if spec.branch is None:  # fed by promotion: what was promoted last
                    self._sync(spec, self._progress(name).desired)
                else:
                    self._sync_branch(spec, head_of(spec, heads))
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

    def _sync_branch(self, spec: EnvironmentSpec, head: str | None) -> None:
        """Bring a branch-fed environment to its head, or to the commit a pin file on the
        head names."""
        env = spec.name
        found = desired_commit(self.source, spec, head, self._progress(env).pin_commits)
        refused = found.refused
        if refused:
            assert head is not None
            progress = self._progress(env)
            if progress.failed != head or progress.desired != head:
                self._update(env, desired=head, failed=head, reason=refused, pinned=None)
                self._emit(
                    "sync.failed",
                    f"{env}: {head[:12]} not deployed: {refused}",
                    "error",
                    environment=env,
                    commit=head,
                )
            return
        if self._progress(env).pinned != found.pinned:
            self._update(env, pinned=found.pinned)
        self._sync(spec, found.commit)

    def _sync(self, spec: EnvironmentSpec, desired: str | None) -> None:
        env = spec.name
        progress = self._progress(env)
        if progress.desired != desired:
            progress = self._update(env, desired=desired)
        if decide(spec, progress, desired) != "sync":
            with self._deferrals_lock:
                self._deferrals.drop(env)  # nothing (more) to bring in
            return
        assert desired is not None
        short = desired[:12]
        self._emit("sync.started", f"{env}: bringing in {short}", environment=env, commit=desired)
        self._update(env, syncing=desired)
        try:
            reason = self._bring_in(spec, desired)
        except NoAppHostUp as e:  # the hosts' state, not the commit's fault: try again soon
            self._defer(env, desired, str(e))
            return
        except Superseded as e:  # latest commit wins: neither deployed nor failed
            with self._deferrals_lock:
                self._deferrals.drop(env)
            self._update(env, syncing=None)
            self._emit(
                "sync.skipped",
                f"{env}: {short} not deployed: {e}",
                environment=env,
                commit=desired,
                data={"superseded_by": e.by},
            )
            return
        except ConveyorError as e:
            reason = str(e)
        self._synced(env, desired, reason)

    def _defer(self, env: str, desired: str, reason: str) -> None:
        """Bringing in `desired` was refused because no app host of the fleet takes replicas
        now: not failed (that would keep the commit out until the branch moves) but tried
        again after a backoff (gitops.deferrals), or as soon as a host is up again."""
        with self._deferrals_lock:
            deferral = self._deferrals.defer(env, desired, time.monotonic())
        self._update(env, syncing=None)
        retry_in = f"{deferral.delay:g}"
        self._emit(
            "sync.deferred",
            f"{env}: sync of {desired[:12]} deferred: {reason}; retrying in {retry_in}s "
            f"(or when a host is up again)",
            "warning",
            environment=env,
            commit=desired,
            data={"attempt": str(deferral.attempts), "retry_in": retry_in},
        )

    def _synced(self, env: str, desired: str, reason: str) -> None:
        """Record how bringing in `desired` ended: failed for `reason`, or serving."""
        with self._deferrals_lock:
            self._deferrals.drop(env)
        short = desired[:12]
        if reason:
            self._update(env, failed=desired, reason=reason, syncing=None)
            self._emit(
                "sync.failed",
                f"{env}: {short} not deployed: {reason}",
                "error",
                environment=env,
                commit=desired,
            )
            return
        progress = self._update(env, deployed=desired, failed=None, reason="", syncing=None)
        said = f"{env}: {short} serving"
        if self._is_kube(env) and progress.delivered is not None:
            said = f"{env}: {short} delivered to git ({progress.delivered[:12]}); Flux applies it"
        self._emit("sync.succeeded", said, environment=env, commit=desired)

    def _deploy_git_env(self) -> dict[str, str]:
        """git's environment for deploy repositories: never a prompt (the server has no one to
        ask), and over SSH the source's deploy key (`--ssh-key`) when the server has one (it
        must then be allowed to push to the deploy repository), else ssh in batch mode."""
        ssh = self.source.ssh
        return {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_SSH_COMMAND": ssh.command() if ssh else "ssh -o BatchMode=yes",
        }

    def _is_kube(self, env: str) -> bool:
        """Whether `env` is delivered to Kubernetes (nothing of it runs on this host)."""
        spec = self.config.environments.get(env) if self.config is not None else None
        return spec is not None and spec.target == "kubernetes"

    def _bring_in(self, spec: EnvironmentSpec, head: str) -> str:
        """Check out, verify, run the pipeline (not for a promoted commit: it ran in the
        source environment), roll out. Returns why it did not, or ""."""
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
        pipeline_file = work / PIPELINE_FILE
        if spec.branch is not None and pipeline_file.exists():
            running = Running(spec, head, pipeline_file)
            with self._watched(running):
                ran = ci_app.run(
                    pipeline_file,
                    executor=self.executor,
                    ref=spec.branch,
                    registry=self.registry,
                    subscribers=[self._collect],
                    environ=self._environ(spec, head),
                )
            status = ran.pipeline.status if ran.pipeline is not None else None
            newer = running.newer
            if newer is not None and status in (None, "success", "canceled"):
                # A pipeline that failed on its own is that commit's failure, told as one.
                ended = "no pipeline ran" if ran.pipeline is None else f"pipeline {ran.pipeline.id}"
                raise Superseded(newer, ended if status is None else f"{ended} {status}")
            if ran.pipeline is not None and ran.pipeline.status != "success":
                return pipeline_refusal(ran.pipeline)
        if spec.target == "kubernetes":
            return self._deliver(spec, head)
        return self._roll_out(spec, head)

    def _deliver(self, spec: EnvironmentSpec, head: str) -> str:
        """A `target: kubernetes` environment's release: `head`, checked out and its pipeline
        green, rendered with its images' digests and committed to the deploy repository
        (app.kube_delivery); no rollout here, Flux applies it. Returns "" (a failure raises
        a ConveyorError, which the sync records as the reason)."""
        assert self.config is not None and spec.deploy is not None
        with self._trees:
            loaded = Project.open(
                Path(spec.compose), None, self._environ(spec, head), cwd=self._work_tree(spec.name),
                profiles=(),
            ).loaded()  # fmt: skip
        images = self._kube_images(spec, head, loaded.stack)
        checkout = kube_delivery.checkout(spec, self.data_dir, self._deploy_git_env())
        options = self.config.kubernetes
        done = kube_delivery.deliver(
            checkout, spec, loaded, options, head, images,
            environ=self._environ(spec, head), secrets_key=self._secrets_key(spec),
            root=self._work_tree(spec.name),
        )  # fmt: skip
        committed = done.committed
        self._update(
            spec.name,
            delivered=committed.commit,
            delivered_release=committed.release,
            delivered_images=dict(images),
        )
        data = {
            "deploy_commit": committed.commit,
            "release": str(committed.release),
            "repo": spec.deploy.repo,
            "branch": spec.deploy.branch,
            "overlay": done.overlay,
        }
        where = f"{spec.deploy.repo} {spec.deploy.branch}:{done.overlay}"
        if committed.created:
            self._emit(
                "delivery.committed",
                f"{spec.name}: release {committed.release} of {head[:12]} committed to "
                f"{where} as {committed.commit[:12]}; Flux applies it",
                environment=spec.name,
                commit=head,
                data=data,
            )
        else:
            self._emit(
                "delivery.unchanged",
                f"{spec.name}: {where} already holds {head[:12]} "
                f"({committed.commit[:12]}): nothing committed",
                environment=spec.name,
                commit=head,
                data=data,
            )
        for warning in done.warnings:
            self._emit(
                "delivery.warning", f"{spec.name}: {warning}", "warning", environment=spec.name
            )
        if done.empty_secrets:
            why = (
                "no value for them on the server"
                if options.age_recipients
                else "no kubernetes.age_recipients in conveyor.yaml to encrypt them to"
            )
            self._emit(
                "delivery.warning",
                f"{spec.name}: Secrets committed without values ({why}): "
                f"{', '.join(done.empty_secrets)}",
                "warning",
                environment=spec.name,
                data={"secrets": ", ".join(done.empty_secrets)},
            )
        return ""

    def _kube_images(self, spec: EnvironmentSpec, head: str, stack: Stack) -> dict[str, str]:
        """The images a kubernetes environment's release of `head` runs: a promotion's very
        images, else the digests the registry serves now. Raises DeliveryError."""
        images = self._promoted_deliveries(spec, head)
        if images:
            return images
        user, password = self.environ.get(REGISTRY_USER), self.environ.get(REGISTRY_PASSWORD)
        credentials = (user, password or "") if user else None
        return kube_delivery.pinned_images(stack, lambda ref: manifest_digest(ref, credentials))

    def _secrets_key(self, spec: EnvironmentSpec) -> bytes | None:
        """The HMAC key of the environment's encrypted Secrets (app.kube_secrets); None when
        conveyor.yaml names no age recipient (placeholders are committed)."""
        assert self.config is not None
        if not self.config.kubernetes.age_recipients:
            return None
        return digest_key(self.data_dir / "environments" / spec.name / SECRETS_KEY)

    def _flux_words(self, env: str) -> dict[str, str]:
        """Deploy commit -> Flux's newest word on it (reconciled, failed), from its events
        (revision `<branch>@sha1:<commit>`)."""
        words: dict[str, str] = {}
        for e in self._recent_events(FLUX_LOOKBACK):  # oldest first: the newest wins
            if e.subject.environment != env or e.kind not in ("flux.reconciled", "flux.failed"):
                continue
            revision = str((e.data or {}).get("revision") or "")
            commit = revision.rsplit(":", 1)[-1]
            if commit:
                words[commit] = "failed" if e.kind == "flux.failed" else "reconciled"
        return words

    def _kube_history(self, spec: EnvironmentSpec) -> tuple[History, dict[str, float]]:
        checkout = kube_delivery.checkout(spec, self.data_dir, self._deploy_git_env())
        return checkout.timed_history(spec.name)

    def _flux_of(self, env: str) -> Callable[[str], str | None]:
        words = self._flux_words(env)

        def of(commit: str) -> str | None:
            # Flux may report an abbreviated commit: match either way.
            return words.get(commit) or next(
                (w for c, w in words.items() if commit.startswith(c) or c.startswith(commit)),
                None,
            )

        return of

    def _kube_diff(self, spec: EnvironmentSpec, desired: str | None) -> DiffView:
        """What delivering the desired commit would change in the environment's directory of
        the deploy branch (a unified diff)."""
        assert self.config is not None
        progress = self._progress(spec.name)
        view = DiffView(
            environment=spec.name,
            desired_commit=desired,
            running_commit=progress.deployed,
            in_sync=False,
            services=[],
            manifests="",
        )
        if desired is None:
            return view
        env_dir = self._env_dir(spec.name)
        env_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="diff-", dir=env_dir))
        note = ""
        try:
            try:
                tree = self.source.checkout(desired, scratch / self.name)
                loaded = Project.open(
                    Path(spec.compose), None, self._environ(spec, desired), cwd=tree,
                    profiles=(),
                ).loaded()  # fmt: skip
            except ConveyorError as e:
                raise ActionRefused(
                    f"the compose file of {spec.name} at {desired[:12]} cannot be read: {e}"
                ) from None
            try:
                images = self._kube_images(spec, desired, loaded.stack)
            except ConveyorError as e:
                images = dict(progress.delivered_images or {})
                note = f"images as last delivered: the registry was not asked ({e})"
            checkout = kube_delivery.checkout(spec, self.data_dir, self._deploy_git_env())
            try:
                text = kube_delivery.pending(
                    checkout, spec, loaded, self.config.kubernetes, images,
                    environ=self._environ(spec, desired), secrets_key=self._secrets_key(spec),
                )  # fmt: skip
            except kube_delivery.DeliveryError as e:
                raise ActionRefused(f"{spec.name}: {e}") from None
        finally:
            self._drop_scratch(scratch)
        return view.model_copy(
            update={"manifests": text, "in_sync": not text and not note, "note": note}
        )

    def _roll_out(self, spec: EnvironmentSpec, head: str) -> str:
        """The rollout of `head`, checked out and its pipeline green. Returns why it did not
        succeed, or ""."""
        images = self._promoted_images(spec, head) if spec.branch is None else None
        project = self._project(spec, head)
        # Collecting before the rollout: a replica it replaces at once still has its lines.
        self._collect_for(spec.name, head, project)
        fresh = deploy_app.current_release(project) is None
        outcome = (
            deploy_app.up(project, agent=False, images=images).outcome
            if fresh
            else deploy_app.deploy(project, [], images=images).outcome
        )
        if not outcome.ok:
            return f"rollout {outcome.rollout} {outcome.status}: {outcome.error or ''}".rstrip(": ")
        return ""

    # latest commit wins while a pipeline runs ------------------------------------------------

    @contextlib.contextmanager
    def _watched(self, running: Running) -> Iterator[None]:
        """While inside, the watcher thread looks for a commit newer than `running`'s."""
        with self._running_lock:
            self._running = running
        if self._wake.is_set():
            # A webhook arrived after this pass fetched: look now that there is a pipeline.
            self._look.set()
        try:
            yield
        finally:
            with self._running_lock:
                self._running = None

    def _watch(self, stopping: threading.Event) -> None:
        """The watcher thread: on each webhook and every poll interval, while the worker runs
        a pipeline, fetch and apply auto-cancel when the branch has a newer commit. The worker
        holds the work lock meanwhile: the watcher changes nothing but the pipeline's cancel
        request and the environment's `superseded`."""
        while not stopping.is_set():
            with self._running_lock:
                running = self._running
            pending = running is not None and running.to_apply() is not None
            self._look.wait(APPLY_RETRY if pending else self._poll_interval())
            woken = self._look.is_set()
            self._look.clear()
            if stopping.is_set():
                return
            self._guarded(functools.partial(self._look_for_newer, fetch=woken or not pending))

    def _look_for_newer(self, *, fetch: bool) -> None:
        with self._running_lock:
            running = self._running
        if running is None:
            return
        spec, env = running.spec, running.spec.name
        if fetch:
            try:
                self.source.fetch()  # Source serializes its fetches: the worker's may run too
            except ConveyorError:
                return  # the worker's next fetch reports it
            found = desired_commit(
                self.source,
                spec,
                head_of(spec, self.source.heads()),
                self._progress(env).pin_commits,
            )
            if found.commit is not None and found.commit != running.commit and not found.refused:
                running.saw(found.commit)
        newer = running.to_apply()
        if newer is None:
            return
        decided = ci_app.supersede(running.pipeline_file, spec.branch, newer, [self._collect])
        if not decided:
            return  # its pipeline has not recorded its start yet: tried again shortly
        running.applied(newer, decided)
        first = decided[0]  # the pipeline itself; the others are its child pipelines
        message = notice(env, running, newer, first)
        self._update(
            env,
            superseded=Supersession(
                commit=running.commit,
                by=newer,
                pipeline=first.pipeline,
                action=first.action,
                message=message,
                at=time.time(),
            ),
        )
        self._emit(
            "sync.superseded",
            message,
            environment=env,
            commit=running.commit,
            data={"superseded_by": newer, "pipeline": str(first.pipeline), "action": first.action},
        )
        self._wake.set()  # the worker brings the newer commit in once this pipeline ends

    def mark_interrupted(self) -> None:
        """After a crash: what the pipelines the last run left running still run (a docker
        job's containers, a shell job's process group) is stopped, and the pipelines are
        marked `interrupted`. Then the environment's `on_interrupted` policy: `rerun` (the
        default) leaves the commit `syncing`, so the first sync brings it in again (unless the
        branch moved on: latest commit wins); `abandon` marks it failed, not brought in again
        until the branch moves. A rollout a crash cut short is the deploy engine's to recover,
        at that sync."""
        root = self.data_dir / "environments"
        if not root.is_dir():
            return
        config = self.config or self._last_config()
        for env_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            env = env_dir.name
            pipeline_file = self._work_tree(env) / PIPELINE_FILE
            if not pipeline_file.exists():
                continue
            try:
                interrupted = ci_app.interrupt_unfinished(pipeline_file, INTERRUPTED)
            except ConveyorError as e:
                self._emit("reconciler.error", f"{env}: {e}", "error", environment=env)
                continue
            if not interrupted:
                continue
            commit = self._progress(env).syncing
            spec = config.environments.get(env) if config is not None else None
            abandon = commit is not None and spec is not None and spec.on_interrupted == "abandon"
            then = ""
            if commit is not None:
                then = (
                    "; its commit is abandoned (on_interrupted: abandon)"
                    if abandon
                    else "; its commit is brought in again"
                )
            for found in interrupted:
                self._interrupted(env, commit, found, then)
            if abandon:
                assert commit is not None
                self._update(env, failed=commit, reason=ABANDONED, syncing=None)
                self._emit(
                    "sync.failed",
                    f"{env}: {commit[:12]} not deployed: {ABANDONED}",
                    "error",
                    environment=env,
                    commit=commit,
                )

    def _interrupted(
        self, env: str, commit: str | None, found: InterruptedPipeline, then: str
    ) -> None:
        stopped = f"; stopped what it left running: {', '.join(found.stopped)}"
        problems = f"; NOT stopped: {'; '.join(found.problems)}"
        self._timeline.emit(
            "pipeline.interrupted",
            f"{env}: pipeline #{found.id} was interrupted: {INTERRUPTED}"
            + (stopped if found.stopped else "")
            + (problems if found.problems else "")
            + then,
            "warning",
            {"reason": INTERRUPTED, "stopped": found.stopped, "problems": found.problems},
            environment=env,
            commit=commit,
            pipeline=found.id,
        )

    def fetched_config(self) -> ConveyorConfig | None:
        """conveyor.yaml as last fetched (the backup scheduler reads its schedules)."""
        return self._last_config()

    def served_project(self, env: str) -> Project | None:
        """The project `env` runs as now, or None when nothing is deployed (backups)."""
        return self._served_project(env)

    def _last_config(self) -> ConveyorConfig | None:
        """conveyor.yaml as the last run fetched it (no fetch: the server is just starting)."""
        try:
            return self._read_config()
        except ConveyorError:
            return None

    def _promoted_images(self, spec: EnvironmentSpec, commit: str) -> dict[str, tuple[str, str]]:
        """The images of the release promoted into `spec` (by id, as the source runs them);
        none when `commit` came another way (a rollback a crash cut short): then built or
        pulled from the checkout as usual."""
        promotion = self._progress(spec.name).promotion
        if promotion is None or promotion.commit != commit:
            return {}
        release = self._release(promotion.source, promotion.release)
        if release is None:
            return {}
        return {name: (sr.image_ref, sr.image_id) for name, sr in release.services.items()}

    def heal_all(self, only: Mapping[str, str] | None = None) -> None:
        """One reconciler tick per serving environment (replace crashed replicas, keep HAProxy
        up), skipped for suspended ones; then one pass of its checks (Nagios configured and
        running, its notifications forwarded), suspended or not: a suspended environment is
        still watched. `only`: just these environments, each with what was noticed about it
        (the drift event says so)."""
        if self.config is None:
            return
        with self._work:
            for name, spec in self.config.environments.items():
                if only is not None and name not in only:
                    continue
                progress = self._progress(name)
                if progress.deployed is None or spec.target == "kubernetes":
                    continue  # a cluster's environment: Kubernetes heals it, not this host
                if not progress.suspended:
                    noticed = only[name] if only is not None else BY_INTERVAL
                    self._noticed[name] = noticed
                    try:
                        reconciler = self._reconciler(spec, progress.deployed)
                        self._mark_router(name)
                        reconciler.tick()
                        self._after_backoff(name, noticed)
                    except LockBusy:
                        pass  # a command works on the project: look again next pass
                    except ConveyorError as e:
                        self._emit("reconciler.error", f"{name}: {e}", "error", environment=name)
                    finally:
                        self._noticed.pop(name, None)
                self._check(spec, progress.deployed)

    def _mark_router(self, env: str) -> None:
        """Remember `env`'s HAProxy as a heal begins: what changes after is noticed
        (`_look_at_routers`). Taken before the heal, so a change made while it runs is
        seen too; the heal's own changes then cost one more look, which finds nothing."""
        known = self._reconcilers.get(env)
        if known is not None:
            self._marks[env] = router_mark(known[1].engine.router)

    def _after_backoff(self, env: str, noticed: str) -> None:
        """A service healed again and again is held back for a while (its heal backoff): heal
        `env` again once that is over, rather than at the next heal interval, naming what was
        noticed in the first place."""
        known = self._reconcilers.get(env)
        held = known[1].held_until() if known is not None else None
        if held is None:
            return
        if not noticed.endswith(AFTER_BACKOFF):
            noticed += AFTER_BACKOFF
        with self._wakeups_lock:
            self._wakeups.at(env, noticed, time.monotonic() + max(0.0, held - time.time()))
        self._stir.set()

    def _check(self, spec: EnvironmentSpec, commit: str) -> None:
        """One pass of the environment's checks controller (app.checks), or Nagios stopped
        when conveyor.yaml (or CONVEYOR_CHECKS=off in the server's environment) turns checks
        off."""
        assert self.config is not None
        try:
            settings = settings_from(self.environ, self.config.checks)
            if not settings.enabled:
                # Stopped once, when checks go off. The projects this server has open (those it
                # heals): a suspended environment is not opened for this alone.
                opened = self._reconcilers.get(spec.name)
                was_on = self._checkers.pop(spec.name, None) is not None
                if opened is not None and (was_on or spec.name not in self._off):
                    stop_checks(opened[1].engine.paths)
                    self._off.add(spec.name)
                return
            self._off.discard(spec.name)
            reconciler = self._reconciler(spec, commit)
            known = self._checkers.get(spec.name)
            if known is None or known.engine is not reconciler.engine or known.settings != settings:
                known = ChecksController(reconciler.engine, settings)
                self._checkers[spec.name] = known
            known.tick()
        except ConveyorError as e:
            self._emit("checks.error", f"{spec.name}: {e}", "warning", environment=spec.name)
        except Exception as e:  # a bug in the checks must not stop the next environment's heal
            what = f"{spec.name}: {type(e).__name__}: {e}"
            self._emit("checks.error", what, "error", environment=spec.name, data={"bug": "1"})

    def _after_heal(self) -> None:
        if self.after_heal is None:
            return
        with self._work:
            self.after_heal([r.engine for _, r in self._reconcilers.values()])

    def report(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        """An event of the server's own (a supervised daemon restarted, say)."""
        self._timeline.emit(kind, message, level, data)

    def collect_logs(self) -> None:
        """One log collector per deployed environment (docs/logs.md), looked at again when
        the deployed commit moves: restarted when its `x-conveyor.logs` settings change,
        stopped when they turn collection off. (A rollout starts it first, `_bring_in`.)"""
        if self.config is None:
            return
        for name, spec in self.config.environments.items():
            deployed = self._progress(name).deployed
            if deployed is None or not self._work_tree(name).exists() or self._is_kube(name):
                continue
            with self._logs_lock:
                known = self._logs.get(name)
            if known is not None and known[0] == deployed:
                continue
            self._collect_for(name, deployed, self._project(spec, deployed))

    def _collect_for(self, env: str, commit: str, project: Project) -> None:
        """Make the environment's collector run as `project` (at `commit`) says."""
        shipping = self.config.logs if self.config is not None else LogShipping()
        settings = (project.stack().logs, shipping)
        with self._logs_lock:
            known = self._logs.get(env)
        collector = known[3] if known is not None else None
        if known is None or known[2] != settings or collector is None:
            if collector is not None:
                collector.stop()
            collector = None
            if settings[0].collect:
                collector = logs_app.start_collector(
                    project,
                    env,
                    self._log_reporter(env),
                    shipping,
                    logs_app.EnvironmentEvents(self._timeline, env),
                )
        with self._logs_lock:
            self._logs[env] = (commit, logs_app.store_path(project), settings, collector)

    def _log_reporter(self, env: str) -> Callable[[str], None]:
        def report(message: str) -> None:
            self._emit("logs.error", message, "warning", environment=env)

        return report

    def _log_path(self, env: str) -> Path | None:
        self._spec(env)  # an unknown environment is a 404
        with self._logs_lock:
            known = self._logs.get(env)
        if known is not None:
            return known[1]
        project = self._served_project(env)
        return None if project is None else logs_app.store_path(project)

    def logs(self, env: str, query: LogQuery) -> list[LogRecord]:
        path = self._log_path(env)
        return [] if path is None else logs_app.search(path, query)

    def log_tail(self, env: str, query: LogQuery, after: int | None, limit: int) -> LogTail:
        path = self._log_path(env)
        if path is None:
            return LogTail(records=[], position=after or 0)
        return logs_app.tail(path, query, after, limit)

    def _reconciler(self, spec: EnvironmentSpec, commit: str) -> Reconciler:
        known = self._reconcilers.get(spec.name)
        if known is None or known[0] != commit:
            known = (commit, deploy_app.reconciler(self._project(spec, commit)))
            # A new dict, not a change: the Docker events thread reads it meanwhile.
            self._reconcilers = {**self._reconcilers, spec.name: known}
        return known[1]

    # environments on this host -----------------------------------------------------------------

    def _env_dir(self, env: str) -> Path:
        return self.data_dir / "environments" / env

    def _work_tree(self, env: str) -> Path:
        # Named after the repository: Compose's default project name is the directory's.
        return self._env_dir(env) / self.name

    def _checkout(self, env: str, sha: str) -> Path:
        work = self._work_tree(env)
        with self._trees:
            if work.exists() and any(work.iterdir()):
                return self.source.move_checkout(work, sha)
            work.parent.mkdir(parents=True, exist_ok=True)
            return self.source.checkout(sha, work)

    def _environ(self, spec: EnvironmentSpec, head: str) -> dict[str, str]:
        return {
            **self.environ,
            "CI_COMMIT_SHA": head,
            "CI_ENVIRONMENT_NAME": spec.name,
            # the server's one metrics stack watches every environment: none of their own
            "CONVEYOR_METRICS": "0",
        }

    def _project(self, spec: EnvironmentSpec, head: str) -> Project:
        work = self._work_tree(spec.name)
        with self._trees:
            project = Project.open(
                Path(spec.compose), None, self._environ(spec, head), cwd=work, profiles=()
            )
            loaded = project.loaded()
        project.subscribe(self._collect)
        project.actor = ACTOR  # its rollouts are the server's, not a command line's
        project._loaded = dataclasses.replace(loaded, stack=apply_overrides(loaded.stack, spec))
        if self.on_project is not None:
            self.on_project(spec, project)
        return project

    def _served_project(self, env: str) -> Project | None:
        spec = self._spec(env)
        progress = self._progress(env)
        if progress.deployed is None or not self._work_tree(env).exists():
            return None
        if spec.target == "kubernetes":
            return None  # it runs on a cluster: no project on this host
        return self._project(spec, progress.deployed)

    def _release(self, env: str, number: int) -> Release | None:
        """Release `number` of `env`'s project (None: no such release, or nothing deployed)."""
        project = self._served_project(env)
        if project is None:
            return None
        store = Store.open(project.paths().state_dir)
        try:
            return store.releases.get(number)
        finally:
            store.close()

    def _desired_stack(self, spec: EnvironmentSpec, commit: str, scratch: Path) -> Stack:
        """The compose stack at `commit` with `spec`'s overrides, checked out under `scratch`
        (in a directory named like the work tree: the project's name comes from it)."""
        tree = self.source.checkout(commit, scratch / self.name)
        project = Project.open(
            Path(spec.compose), None, self._environ(spec, commit), cwd=tree, profiles=()
        )
        return apply_overrides(project.stack(), spec)

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

    def _update(self, env: str, **changes: object) -> EnvProgress:
        """Change some fields of `env`'s progress, read and written whole under one lock (an
        approval arriving while a sync runs is not lost)."""
        with self._progress_lock:
            return self._save(env, self._progress(env).model_copy(update=changes))

    def _change(self, env: str, change: Callable[[EnvProgress], EnvProgress]) -> EnvProgress:
        with self._progress_lock:
            return self._save(env, change(self._progress(env)))

    # events ----------------------------------------------------------------------------------

    def _collect(self, event: Event) -> None:
        if not event.durable:
            return
        if event.kind == "host.changed" and event.data.get("after") == "up":
            # A fleet host takes replicas again: a sync deferred for want of one goes now.
            with self._deferrals_lock:
                hurried = self._deferrals.hurry(time.monotonic())
            if hurried:
                self._stir.set()
        if event.kind == "heal.succeeded":  # told once, as the drift it corrected
            env = event.subject.environment
            event = drift_event(event, self._noticed.get(env, "") if env else "")
        if self._notify is not None:
            self._notify[1](event)  # queued: never blocks, never raises
        if self.on_event is not None:
            self.on_event(event)
        with self._events_lock:
            if self._journal is not None:
                recorded = self._journal.append(event)
                if recorded.id % PRUNE_EVERY == 0:
                    self._journal.keep_newest(MAX_EVENTS)
                return
            self._events.append(event.model_copy(update={"id": self._next_id}))
            self._next_id += 1

    def notice(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
        *,
        environment: str | None = None,
        service: str | None = None,
    ) -> None:
        """An event from outside the worker (an Alertmanager alert, `app.alerts`): recorded
        and notified like the controller's own."""
        self._timeline.emit(kind, message, level, data, environment=environment, service=service)

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
        release = progress.delivered_release
        project = self._served_project(spec.name)
        if project is not None:
            current = deploy_app.current_release(project)
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
            target=spec.target,
        )

    def environments(self) -> list[EnvironmentSummary]:
        if self.config is None:
            return []
        order = self.config.promotion_order()
        return [self._summary(self.config.environments[name]) for name in order]

    def environment(self, env: str) -> EnvironmentDetail:
        spec = self._spec(env)
        project = self._served_project(env)
        progress = self._progress(env)
        return EnvironmentDetail(
            environment=self._summary(spec),
            desired_commit=progress.desired,
            pinned_commit=progress.pinned,
            failed_commit=progress.failed,
            reason=progress.reason if progress.failed is not None else "",
            syncing_commit=progress.syncing,
            waiting=progress.waiting,
            approvals=list(dict.fromkeys(a.release for a in progress.approvals)),
            status=deploy_app.status(project) if project is not None else None,
            superseded=progress.superseded,
            delivery=self._delivery(spec, progress),
        )

    def _delivery(self, spec: EnvironmentSpec, progress: EnvProgress) -> DeliveryView | None:
        """Where a kubernetes environment's release is in git and what Flux last said of
        that commit (the newest flux.* event of the environment naming it as its revision,
        `<branch>@sha1:<commit>`)."""
        if spec.deploy is None:
            return None
        view = DeliveryView(
            repo=spec.deploy.repo,
            branch=spec.deploy.branch,
            overlay=kube_delivery.overlay_of(spec),
            commit=progress.delivered,
            release=progress.delivered_release,
        )
        if progress.delivered is None:
            return view
        verdicts = self._flux_verdicts(spec.name, progress.delivered)
        if verdicts:
            newest = verdicts[-1]
            flux = "failed" if newest.kind == "flux.failed" else "reconciled"
            return view.model_copy(update={"flux": flux, "flux_message": newest.message})
        return view

    def releases(self, env: str) -> list[ReleaseView]:
        spec = self._spec(env)
        if spec.target == "kubernetes" and spec.deploy is not None:
            history, times = self._kube_history(spec)
            return kube_releases(history, times, self._flux_of(env))
        project = self._served_project(env)
        return deploy_app.history(project, 50).releases if project is not None else []

    def rollouts(self, env: str) -> list[RolloutView]:
        spec = self._spec(env)
        if spec.target == "kubernetes" and spec.deploy is not None:
            history, times = self._kube_history(spec)
            return kube_rollouts(history, times, self._flux_of(env))
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
        try:
            # by id, one read: the dashboard asks again and again while a job runs
            return ci_app.logs(path, str(job))
        except ConveyorError:
            raise NotFound(f"no job {job} in {env}'s pipelines") from None

    def pipeline_page(self, env: str, before: int | None, limit: int) -> list[PipelineSummary]:
        path = self._pipeline_file(env)
        return ci_app.history(path, limit, before).pipelines if path is not None else []

    def pipeline(self, env: str, pipeline: int) -> PipelineView:
        path = self._pipeline_file(env)
        if path is None:
            raise NotFound(f"{env} runs no pipeline")
        try:
            return ci_app.show(path, pipeline)
        except ConveyorError as e:
            raise NotFound(f"{env}: {e}") from None

    def artifact_file(self, env: str, job: int, path: str) -> Path:
        pipeline_file = self._pipeline_file(env)
        if pipeline_file is None:
            raise NotFound(f"{env} runs no pipeline")
        try:
            return ci_app.artifact_file(pipeline_file, job, path)
        except ConveyorError as e:
            raise NotFound(f"{env}: {e}") from None

    def pipeline_graph(self, env: str, sha: str | None = None) -> GraphView | None:
        spec = self._spec(env)
        path = self._pipeline_file(env)
        if path is None:
            return None
        key = (env, sha or "")
        with self._graphs_lock:
            if sha is not None and key in self._graphs:
                return self._graphs[key]  # a commit's file never changes
        text: str | None = None
        if sha is not None:
            try:
                text = self.source.read_file(sha, PIPELINE_FILE)
            except SourceError:
                text = None
            if text is None:
                return None
        try:
            with self._trees:
                same = text is None or text == path.read_text()
                view = ci_app.graph(path, ref=spec.branch) if same else None  # its includes
            if not same:
                assert text is not None
                # the file as it was at `sha`, alone: a local include of it that the work
                # tree no longer has fails, and the page draws what was recorded
                with tempfile.TemporaryDirectory(prefix="graph-") as scratch:
                    file = Path(scratch) / PIPELINE_FILE
                    file.write_text(text)
                    view = ci_app.graph(file, ref=spec.branch)
        except (ConveyorError, OSError):
            view = None
        if sha is not None:
            with self._graphs_lock:
                if len(self._graphs) >= 256:
                    self._graphs.clear()
                self._graphs[key] = view
        return view

    def cancel_pipeline(self, env: str, pipeline: int, actor: Principal) -> ActionResult:
        """The engine's own cancel request (the running pipeline polls it every 0.5 s and
        stops its jobs); not under `_work`, which the running pipeline holds."""
        path = self._pipeline_file(env)
        if path is None:
            raise NotFound(f"{env} runs no pipeline")
        store = ci_store(path.parent)
        try:
            row = store.pipelines.get(pipeline)
            if row is None or row.parent_pipeline_id is not None:
                raise NotFound(f"{env}: no pipeline {pipeline}")
            if row.status not in ("running", "created"):
                raise ActionRefused(f"pipeline #{pipeline} is {row.status}, not running")
            store.pipelines.request_cancel(pipeline, "all")
        finally:
            store.close()
        self._timeline.emit(
            "pipeline.canceled",
            f"pipeline #{pipeline} of {env}: cancel asked by {actor.name}",
            environment=env,
            commit=row.sha,
            pipeline=pipeline,
            data={"scope": "all", "actor": actor.name},
        )
        return ActionResult(
            action="cancel",
            environment=env,
            message=f"pipeline #{pipeline}: cancel asked; its running jobs stop within seconds",
        )

    def retry_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        """GitLab's "Retry" of a failed or canceled job of one of `env`'s pipelines: checked
        now (ActionRefused with the reason), run in the background by `_rerun`."""
        return self._start_rerun("retry", env, job, actor)

    def play_job(self, env: str, job: int, actor: Principal) -> ActionResult:
        """GitLab's "Play" of a manual job of one of `env`'s pipelines, as `retry_job`."""
        return self._start_rerun("play", env, job, actor)

    def _start_rerun(self, kind: RerunKind, env: str, job: int, actor: Principal) -> ActionResult:
        spec = self._spec(env)
        path = self._pipeline_file(env)
        if path is None:
            raise NotFound(f"{env} runs no pipeline")
        try:
            row, refused = ci_app.rerun_refusal(path, kind, job)
        except ConveyorError as e:
            raise NotFound(f"{env}: {e}") from None
        if refused is not None:
            raise ActionRefused(f"cannot {kind} job #{job} ({row.name}): {refused}")
        sha = ci_app.show(path, row.pipeline_id).sha or ""
        # Like a pipeline of a sync, the job runs in a thread of its own under `_work` (one
        # change to the world at a time): the request is answered at once.
        thread = threading.Thread(
            target=self._guarded,
            args=(functools.partial(self._rerun, kind, spec, path, job, actor, sha),),
            name=f"{kind}-{env}-{job}",
            daemon=True,
        )
        thread.start()
        return ActionResult(
            action=kind,
            environment=env,
            message=f"job #{job} ({row.name}) of pipeline #{row.pipeline_id}: {kind} started",
        )

    def _rerun(
        self,
        kind: RerunKind,
        spec: EnvironmentSpec,
        path: Path,
        job: int,
        actor: Principal,
        commit: str,
    ) -> None:
        """Run the job again; when that makes the pipeline of the commit this environment
        refused green, roll that commit out as the sync would have (GitLab deploys once the
        pipeline passes). Errors are told as events: nobody waits for this thread."""
        env = spec.name
        with self._work:
            use = ci_app.retry if kind == "retry" else ci_app.play
            try:
                view = use(
                    path,
                    job,
                    executor=self.executor,
                    registry=self.registry,
                    subscribers=[self._collect],
                    environ=self._environ(spec, commit),
                    actor=actor.name,
                )
            except ConveyorError as e:
                self._emit(
                    "pipeline.note",
                    f"{env}: {kind} of job #{job} did not run: {e}",
                    "error",
                    environment=env,
                    data={"title": kind},
                )
                return
            progress = self._progress(env)
            sha = view.sha
            if (
                view.status != "success"
                or sha is None
                or spec.branch is None
                or progress.suspended
                or progress.failed != sha
                or progress.desired != sha
                or progress.syncing is not None
            ):
                return
            self._emit(
                "sync.started",
                f"{env}: bringing in {sha[:12]}: pipeline {view.id} passed after a {kind}",
                environment=env,
                commit=sha,
            )
            self._update(env, syncing=sha)
            try:
                reason = self._roll_out(spec, sha)
            except ConveyorError as e:
                reason = str(e)
            self._synced(env, sha, reason)

    def timeline(self, env: str, limit: int = 10) -> list[TimelineView]:
        """Commit -> pipeline -> release -> rollout -> verdict for each of the newest `limit`
        commits the environment ran a pipeline for or released, newest first."""
        from conveyor.app.timeline import timeline

        spec = self._spec(env)
        progress = self._progress(env)
        anchor = progress.deployed or progress.syncing or progress.failed
        if anchor is None or not self._work_tree(env).exists():
            return []
        try:
            project = self._project(spec, anchor)
        except ConveyorError:  # the work tree's compose file cannot be read: nothing to show
            return []
        return [
            self._with_deliveries(env, timeline(project, sha))
            for sha in self._recent_commits(env, project, limit)
        ]

    def commit_timeline(self, env: str, sha: str, newest: int | None = None) -> TimelineView:
        from conveyor.app.timeline import timeline

        spec = self._spec(env)
        progress = self._progress(env)
        anchor = progress.deployed or progress.syncing or progress.failed
        if anchor is None or not self._work_tree(env).exists():
            raise NotFound(f"{env} has run nothing yet")
        try:
            project = self._project(spec, anchor)
            return self._with_deliveries(env, timeline(project, sha, events=True, newest=newest))
        except ConveyorError as e:  # an unknown ref, or a work tree that cannot be read
            raise NotFound(f"{env}: commit {sha[:12]}: {e}") from None

    def _with_deliveries(self, env: str, view: TimelineView) -> TimelineView:
        """A kubernetes environment's timeline of a commit, with its deliveries (the commits
        to the deploy repository, from the server's events) and what Flux said of them."""
        if not self._is_kube(env) or view.commit is None:
            return view
        recent = self._recent_events(FLUX_LOOKBACK)
        delivered = [
            e
            for e in recent
            if e.subject.environment == env
            and e.subject.commit == view.commit
            and e.kind in ("delivery.committed", "delivery.unchanged", "delivery.reverted")
        ]
        commits = {str(e.data.get("deploy_commit")) for e in delivered if e.data}
        told = [
            e
            for e in recent
            if e.subject.environment == env
            and e.kind in ("flux.reconciled", "flux.failed")
            and any(str(e.data.get("revision") or "").endswith(c) for c in commits)
        ]
        extra = [
            TimelineEntry(
                at=e.ts,
                duration=None,
                what="delivery",
                project=env,
                id=int(e.data.get("release") or 0) if e.kind.startswith("delivery.") else 0,
                title=e.message,
                status=e.kind.split(".", 1)[1],
            )
            for e in [*delivered, *told]
        ]
        entries = sorted([*view.entries, *extra], key=lambda entry: entry.at)
        return view.model_copy(update={"entries": entries})

    def _recent_commits(self, env: str, project: Project, limit: int) -> list[str]:
        """The commits `env` ran pipelines for or built releases from, newest first."""
        seen: dict[str, float] = {}
        pipeline_file = self._work_tree(env) / PIPELINE_FILE
        if (self._work_tree(env) / ".conveyor").is_dir() and pipeline_file.exists():
            store = ci_store(self._work_tree(env))
            try:
                for row in store.pipelines.latest(limit):
                    if row.sha:
                        seen[row.sha] = max(seen.get(row.sha, 0.0), row.started_at)
            finally:
                store.close()
        state = project.paths().state_dir
        if (state / DB_NAME).exists():
            db = Store.open(state)
            try:
                for release in db.releases.latest(limit):
                    if release.commit:
                        seen[release.commit] = max(
                            seen.get(release.commit, 0.0), release.created_at
                        )
            finally:
                db.close()
        return sorted(seen, key=lambda sha: seen[sha], reverse=True)[:limit]

    def dora(self, env: str, since: str, until: float | None = None) -> DoraView:
        """The DORA metrics of `env`'s project (lead time from the commit times in its work
        tree, a checkout of the source)."""
        self._spec(env)
        project = self._served_project(env)
        if project is None:
            return empty_dora(f"{self.name}-{env}", env, since, until)
        return dora_report(project, None, since, until)

    def diff(self, env: str) -> DiffView:
        """Desired (the compose file at the desired commit, with the environment's overrides)
        against what runs, per service. Only the services that differ are listed."""
        spec = self._spec(env)
        progress = self._progress(env)
        desired = progress.desired
        if spec.target == "kubernetes" and spec.deploy is not None:
            return self._kube_diff(spec, desired)
        services = []
        if desired is not None:
            env_dir = self._env_dir(env)
            env_dir.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix="diff-", dir=env_dir))
            try:
                try:
                    stack = self._desired_stack(spec, desired, scratch)
                except ConveyorError as e:
                    raise ActionRefused(
                        f"the compose file of {env} at {desired[:12]} cannot be read: {e}"
                    ) from None
                images = self._promoted_images(spec, desired) if spec.branch is None else None
                services = service_diffs(
                    stack,
                    scratch / self.name,
                    self._work_tree(env),
                    self._served_project(env),
                    images,
                )
            finally:
                self._drop_scratch(scratch)
        return DiffView(
            environment=env,
            desired_commit=desired,
            running_commit=progress.deployed,
            in_sync=desired is not None and desired == progress.deployed and not services,
            services=services,
        )

    def _drop_scratch(self, scratch: Path) -> None:
        tree = scratch / self.name
        if tree.exists():
            # Else removed with the directory below; git prunes the stale entry later.
            with contextlib.suppress(SourceError):
                self.source.remove_checkout(tree)
        shutil.rmtree(scratch, ignore_errors=True)

    def events(self, after: int | None, limit: int) -> list[Event]:
        if self._journal is not None:
            with self._events_lock:
                return self._journal.after(after, limit)
        with self._events_lock:
            found = [e for e in self._events if after is None or e.id > after]
        return found[:limit]

    def last_event_id(self) -> int | None:
        with self._events_lock:
            if self._journal is not None:
                return self._journal.last_id()
            return self._events[-1].id if self._events else None

    def commit(self, env: str, sha: str) -> CommitView:
        """A commit of the source as last fetched (the mirror is read, never fetched here)."""
        self._spec(env)
        try:
            info = self.source.commit(sha)
        except SourceError as e:
            raise NotFound(f"commit {sha[:12]} of {env}: {e}") from None
        title = info.message.strip().splitlines()[0] if info.message.strip() else ""
        return CommitView(
            sha=info.sha, author=info.author, title=title, committed_at=info.committed_at
        )

    # ServerBackend: acting -------------------------------------------------------------------

    def promote(self, env: str, source: str, actor: Principal) -> ActionResult:
        """Deploy the serving release of `source` (its commit, with the same images) into
        `env`, once every gate of `env` holds; refused (409) naming each unmet gate."""
        return self._promote(env, source, actor.name)

    def promote_due(self) -> None:
        """Promote into each `auto_promote` environment the release its source serves, once
        every gate holds; each release of the source is tried once (a failed promotion waits
        for the next release, or for `promote`). What it waits for is kept for `env status`."""
        if self.config is None:
            return
        with self._work:
            for name in self.config.promotion_order():
                spec = self.config.environments[name]
                if spec.promote_from is None or not spec.auto_promote:
                    continue
                progress = self._progress(name)
                if progress.suspended:
                    continue
                waiting = self._auto_promotion(spec, spec.promote_from, progress)
                if waiting != self._progress(name).waiting:
                    self._update(name, waiting=waiting)

    def _auto_promotion(self, spec: EnvironmentSpec, source: str, progress: EnvProgress) -> str:
        """Promote if due; returns what the promotion waits for ("" when nothing)."""
        try:
            facts = self._gate_facts(spec.name, source)
        except ActionRefused as e:
            return str(e)
        done = progress.promotion
        if done is not None and (done.source, done.release) == (source, facts.release):
            return ""  # promoted already (or tried: its verdict is in the progress)
        if progress.failed == facts.commit:
            return ""
        unmet = unmet_gates(spec.gates, facts)
        if unmet:
            return "; ".join(unmet)
        with contextlib.suppress(ActionRefused):  # reported by _promote as promotion.failed
            self._promote(spec.name, source, AUTO_PROMOTER)
        return ""

    def _promote(self, env: str, source: str, by: str) -> ActionResult:
        spec = self._spec(env)
        assert self.config is not None  # _spec found the environment in it
        refusal = promotion_refusal(self.config, env, source)
        if refusal:
            raise ActionRefused(refusal)
        with self._work:
            if self._progress(env).suspended:
                raise ActionRefused(f"{env} is suspended: resume it first")
            facts = self._gate_facts(env, source)
            unmet = unmet_gates(spec.gates, facts)
            if unmet:
                raise ActionRefused(
                    f"release {facts.release} of {source} cannot be promoted into {env}: "
                    + "; ".join(unmet)
                )
            commit, short = facts.commit, facts.commit[:12]
            promotion = Promotion(
                source=source,
                release=facts.release,
                commit=commit,
                by=by,
                at=time.time(),
            )
            # `failed` is cleared: promoting a commit that failed here before is a new try.
            self._update(env, desired=commit, promotion=promotion, failed=None, reason="")
            self._sync(spec, commit)
            progress = self._progress(env)
            what = f"release {facts.release} of {source} ({short})"
            if progress.deployed != commit:
                reason = progress.reason or "the rollout did not finish"
                self._emit(
                    "promotion.failed",
                    f"{env}: promoting {what} failed: {reason}",
                    "error",
                    environment=env,
                    commit=commit,
                    data={"from": source, "reason": reason},
                )
                raise ActionRefused(
                    f"promoting {what} into {env} failed: {reason}; what served keeps serving"
                )
            self._emit(
                "promotion.succeeded",
                f"{env}: {what} promoted by {by}",
                environment=env,
                commit=commit,
                data={"from": source},
            )
            release, rollout = self._latest(env)
            return ActionResult(
                action="promote",
                environment=env,
                message=f"{what} serves in {env}",
                release=release,
                rollout=rollout,
            )

    def _gate_facts(self, env: str, source: str) -> GateFacts:
        """What the gates of `env` are checked against: `source`'s serving release."""
        if self._is_kube(source):
            return self._delivered_gate_facts(env, source)
        project = self._served_project(source)
        if project is None:
            raise ActionRefused(f"{source} serves nothing yet: there is no release to promote")
        store = Store.open(project.paths().state_dir)
        try:
            current = store.current_release()
            rows = store.rollouts.latest(limit=500)
        finally:
            store.close()
        if current is None or current.commit is None:
            raise ActionRefused(f"{source} has no serving release built from a commit")
        since = serving_since(current.number, rows)
        failed = failures_since(current.number, since or current.created_at, rows)
        unhealthy: list[str] = []
        for view in deploy_app.status(project).services:
            if view.running_replicas < view.desired_replicas:
                unhealthy.append(
                    f"{view.name} has {view.running_replicas} of {view.desired_replicas} "
                    "replicas running"
                )
            sick = [r.name for r in view.replicas if r.health in ("unhealthy", "starting")]
            if sick:
                unhealthy.append(f"{view.name}: {', '.join(sick)} not healthy")
        pipeline = self._pipeline_of(source, current.commit)
        approval = self._progress(env).approved(current.number, current.commit)
        return GateFacts(
            source=source,
            release=current.number,
            commit=current.commit,
            now=time.time(),
            serving_since=since,
            failures_since=tuple(failed),
            unhealthy=tuple(unhealthy),
            pipeline_needed=self.source.read_file(current.commit, PIPELINE_FILE) is not None,
            pipeline=pipeline[1] if pipeline else None,
            pipeline_id=pipeline[0] if pipeline else None,
            approved_by=approval.by if approval else None,
        )

    def _delivered_gate_facts(self, env: str, source: str) -> GateFacts:
        """The gates' facts for a kubernetes source environment: its delivered release, and
        what Flux said of that commit (nothing of it runs here to look at). It serves from
        Flux's first "reconciled" about the commit; a "failed" about it is a failure, and
        the newest word being "failed" makes it unhealthy."""
        progress = self._progress(source)
        commit, release = progress.deployed, progress.delivered_release
        if commit is None or release is None or progress.delivered is None:
            raise ActionRefused(f"{source} has delivered nothing yet: there is no release")
        verdicts = self._flux_verdicts(source, progress.delivered)
        since = min((e.ts for e in verdicts if e.kind == "flux.reconciled"), default=None)
        failed = tuple(f"Flux: {e.message}" for e in verdicts if e.kind == "flux.failed")
        unhealthy = failed[-1:] if verdicts and verdicts[-1].kind == "flux.failed" else ()
        pipeline = self._pipeline_of(source, commit)
        approval = self._progress(env).approved(release, commit)
        return GateFacts(
            source=source,
            release=release,
            commit=commit,
            now=time.time(),
            serving_since=since,
            failures_since=failed,
            unhealthy=unhealthy,
            pipeline_needed=self.source.read_file(commit, PIPELINE_FILE) is not None,
            pipeline=pipeline[1] if pipeline else None,
            pipeline_id=pipeline[0] if pipeline else None,
            approved_by=approval.by if approval else None,
        )

    def _flux_verdicts(self, env: str, delivered: str) -> list[Event]:
        """Flux's events about `env` whose revision is the deploy commit `delivered`
        (`<branch>@sha1:<commit>`), oldest first."""
        return [
            e
            for e in self._recent_events(FLUX_LOOKBACK)
            if e.subject.environment == env
            and e.kind in ("flux.reconciled", "flux.failed")
            and str((e.data or {}).get("revision") or "").endswith(delivered)
        ]

    def _promoted_deliveries(self, spec: EnvironmentSpec, commit: str) -> dict[str, str]:
        """The images the kubernetes source of the promotion into `spec` delivered for
        `commit` (a promotion moves those very images; none: resolved from the registry)."""
        promotion = self._progress(spec.name).promotion
        if spec.branch is not None or promotion is None or promotion.commit != commit:
            return {}
        source = self._progress(promotion.source)
        return dict(source.delivered_images) if source.deployed == commit else {}

    def _pipeline_of(self, env: str, commit: str) -> tuple[int, str] | None:
        """(id, status) of the newest pipeline run for `commit` in `env`, or in the
        environment it was promoted from (and so on up): pipelines run where a branch feeds."""
        seen: set[str] = set()
        name: str | None = env
        while name is not None and name not in seen and self.config is not None:
            seen.add(name)
            work = self._work_tree(name)
            if (work / ".conveyor").is_dir():
                store = ci_store(work)
                try:
                    rows = [
                        r
                        for r in store.pipelines.for_commit(commit)
                        if r.parent_pipeline_id is None
                    ]
                finally:
                    store.close()
                if rows:
                    return rows[-1].id, rows[-1].status
            spec = self.config.environments.get(name)
            name = spec.promote_from if spec is not None else None
        return None

    def _latest(self, env: str) -> tuple[int | None, int | None]:
        """(serving release, newest rollout) of `env`'s project."""
        if self._is_kube(env):
            return self._progress(env).delivered_release, None
        project = self._served_project(env)
        if project is None:
            return None, None
        history = deploy_app.history(project, 1)
        current = deploy_app.current_release(project)
        return (
            current.number if current else None,
            history.rollouts[0].id if history.rollouts else None,
        )

    def rollback(self, env: str, to_release: int | None, actor: Principal) -> ActionResult:
        """Roll `env` back at once to `to_release` (default: its previous release). For a
        branch-fed environment the rollback is first recorded in git, a pin file committed on
        the branch, so the next poll does not undo it; if git cannot take the pin nothing is
        changed (409)."""
        spec = self._spec(env)
        if spec.target == "kubernetes":
            return self._rollback_delivery(spec, to_release, actor)
        with self._work:
            if self._progress(env).suspended:
                raise ActionRefused(f"{env} is suspended: resume it first")
            project = self._served_project(env)
            if project is None:
                raise ActionRefused(f"{env} serves nothing yet: there is nothing to roll back")
            target = self._rollback_target(env, project, to_release)
            commit = target.commit
            assert commit is not None  # _rollback_target refuses releases without one
            pinned = ""
            if spec.branch is not None:
                pinned = self._pin(spec, target, actor)
            self._update(env, desired=commit)
            try:
                done = deploy_app.rollback(project, None, target.number)
            except ConveyorError as e:
                raise ActionRefused(f"{env}: rollback to release {target.number}: {e}") from None
            outcome = done.outcome
            if outcome.status != "succeeded":
                reason = f"rollout {outcome.rollout} {outcome.status}: {outcome.error or ''}"
                reason = reason.rstrip(": ")
                if pinned:
                    # Git says the old commit now: the next pass tries it the usual way once
                    # (pipeline, rollout), and marks it failed if that fails too.
                    raise ActionRefused(
                        f"{env}: rollback to release {target.number} failed: {reason}; the pin "
                        "stays in git, so the next pass brings that commit in"
                    )
                self._update(env, failed=commit, reason=reason)
                raise ActionRefused(f"{env}: rollback to release {target.number} failed: {reason}")
            self._checkout(env, commit)  # the work tree shows what serves
            self._update(env, deployed=commit, failed=None, reason="", syncing=None)
            where = f"; pinned in git by {pinned[:12]} on {spec.branch}" if pinned else ""
            return ActionResult(
                action="rollback",
                environment=env,
                message=f"{env} rolled back to release {target.number} ({commit[:12]}){where}",
                release=target.number,
                rollout=outcome.rollout,
            )

    def _rollback_delivery(
        self, spec: EnvironmentSpec, to_release: int | None, actor: Principal
    ) -> ActionResult:
        """A kubernetes environment's rollback: the release commit(s) in its deploy repository
        reverted in one commit, pushed; Flux applies the revert. A revert, not a new rendering
        of the older source commit: it undoes exactly what the release changed, needs neither
        that commit's images to be resolvable again nor today's renderer to write the same
        bytes, and the deploy repository's log says which release was undone. For a
        branch-fed environment the target's source commit is pinned first (as on Docker), so
        the next pass does not deliver the branch's head again."""
        env = spec.name
        with self._work:
            if self._progress(env).suspended:
                raise ActionRefused(f"{env} is suspended: resume it first")
            checkout = kube_delivery.checkout(spec, self.data_dir, self._deploy_git_env())
            try:
                history = checkout.history(env)
                _, target = rollback_plan(history, to_release)
            except LookupError as e:
                raise NotFound(f"{env}: {e}") from None
            except ValueError as e:
                raise ActionRefused(f"{env}: {e}") from None
            except SourceError as e:
                raise ActionRefused(f"{env}: {e}") from None
            pinned = ""
            if spec.branch is not None:
                pinned = self._pin_at(spec, target.source, target.release, actor)
            try:
                reverted = kube_delivery.roll_back(checkout, spec, to_release, actor.name)
            except SourceError as e:
                where = "; the pin stays in git, so the next pass delivers it" if pinned else ""
                raise ActionRefused(f"{env}: the revert cannot be pushed: {e}{where}") from None
            source = reverted.target.source
            self._update(
                env,
                desired=source,
                deployed=source,
                failed=None,
                reason="",
                syncing=None,
                delivered=reverted.commit,
                delivered_release=reverted.target.release,
                delivered_images=dict(reverted.target.images),
            )
            with contextlib.suppress(ConveyorError):
                self._checkout(env, source)  # the work tree shows what is delivered
            undone = " ".join(d.commit for d in reverted.undone)
            shorts = ", ".join(d.commit[:12] for d in reverted.undone)
            message = (
                f"{env} rolled back to release {reverted.target.release} ({source[:12]}): "
                f"{reverted.commit[:12]} reverts {shorts} in {checkout.shown}; Flux applies it"
            )
            if pinned:
                message += f"; pinned in git by {pinned[:12]} on {spec.branch}"
            self._emit(
                "delivery.reverted",
                message,
                environment=env,
                commit=source,
                data={
                    "deploy_commit": reverted.commit,
                    "release": str(reverted.target.release),
                    "reverts": undone,
                },
            )
            return ActionResult(
                action="rollback",
                environment=env,
                message=message,
                release=reverted.target.release,
            )

    def _recent_events(self, count: int) -> list[Event]:
        """The newest `count` events, oldest first."""
        with self._events_lock:
            if self._journal is None:
                return list(self._events)[-count:]
            last = self._journal.last_id()
            if last is None:
                return []
            return self._journal.after(max(0, last - count), count)

    def _rollback_target(self, env: str, project: Project, to_release: int | None) -> Release:
        store = Store.open(project.paths().state_dir)
        try:
            current = store.current_release()
            target = (
                store.previous_release() if to_release is None else store.releases.get(to_release)
            )
        finally:
            store.close()
        if target is None:
            if to_release is not None:
                raise NotFound(f"{env} has no release {to_release}")
            raise ActionRefused(f"{env} has no previous release to roll back to")
        if current is not None and target.number == current.number:
            raise ActionRefused(f"release {target.number} is the one serving {env}")
        if target.commit is None:
            raise ActionRefused(
                f"release {target.number} of {env} names no commit: it cannot be pinned in git"
            )
        return target

    def _pin(self, spec: EnvironmentSpec, target: Release, actor: Principal) -> str:
        """Commit and push `.conveyor/pins/<env>.json` holding `spec` at `target`'s commit;
        returns the pin commit. Remembered, so the controller knows its own pins."""
        assert target.commit is not None
        return self._pin_at(spec, target.commit, target.number, actor)

    def _pin_at(self, spec: EnvironmentSpec, commit: str, number: int, actor: Principal) -> str:
        """`_pin` of release `number` built from `commit`."""
        assert spec.branch is not None
        env, path = spec.name, pin_path(spec.name)
        pin = Pin(commit=commit, release=number, by=actor.name, at=time.time())
        message = (
            f"conveyor: roll {env} back to release {number} ({commit[:12]})\n\n"
            f"{env} runs {commit} while {path} exists; delete the file to follow "
            f"{spec.branch} again. Asked by {actor.name} through the Conveyor server.\n"
        )
        key = self.environ.get(PIN_SIGNING_KEY)
        try:
            sha = self.source.commit_pin(
                spec.branch,
                path,
                render_pin(pin),
                message,
                f"{actor.name} <{actor.name}@conveyor.invalid>",
                signing_key=Path(key) if key else None,
            )
        except SourceError as e:
            raise ActionRefused(
                f"{env}: the rollback cannot be recorded in git, so nothing was changed: {e}"
            ) from None
        self._change(
            env, lambda p: p.with_pin_commit(sha).model_copy(update={"pinned": pin.commit})
        )
        return sha

    def approve(self, env: str, release: int, actor: Principal) -> ActionResult:
        """Approve promoting release `release` of `env`'s source environment into `env`."""
        spec = self._spec(env)
        source = spec.promote_from
        if source is None:
            raise ActionRefused(
                f"{env} follows branch {spec.branch!r}: it is not promoted into, so there is "
                "nothing to approve"
            )
        found = self._release(source, release)
        if found is None:
            raise NotFound(f"{source} has no release {release}")
        approval = Approval(release=release, commit=found.commit, by=actor.name, at=time.time())
        self._change(env, lambda p: p.with_approval(approval))
        commit = f" ({found.commit[:12]})" if found.commit else ""
        return ActionResult(
            action="approve",
            environment=env,
            message=f"release {release} of {source}{commit} approved for {env} by {actor.name}",
            release=release,
        )

    def suspend(self, env: str, actor: Principal) -> ActionResult:
        return self._set_suspended(env, True, actor)

    def resume(self, env: str, actor: Principal) -> ActionResult:
        result = self._set_suspended(env, False, actor)
        self.wake()  # what git says now is brought in at once
        return result

    def _set_suspended(self, env: str, suspended: bool, actor: Principal) -> ActionResult:
        self._spec(env)
        with self._work:
            self._update(env, suspended=suspended)
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


def pipeline_refusal(pipeline: PipelineView) -> str:
    """Why a pipeline that did not succeed keeps its commit out. A pipeline waiting on a
    blocking manual job is not green, as on GitLab: say which job and how to unblock it."""
    reason = f"pipeline {pipeline.id} {pipeline.status}"
    if pipeline.status == "failed":
        failed = [
            j.name + (f" (exit code {j.exit_code})" if j.exit_code else "")
            for j in pipeline.jobs
            if j.status == "failed" and not j.allow_failure
        ]
        return f"{reason}: job {', '.join(failed)} failed" if failed else reason
    if pipeline.status != "manual":
        return reason
    waiting = [j.name for j in pipeline.jobs if j.status == "manual" and not j.allow_failure]
    if not waiting:
        return reason
    return (
        f"{reason}: it waits for the manual job(s) {', '.join(waiting)}, which block it "
        "(`when: manual` in `rules:` without `allow_failure: true`); the server deploys green "
        "pipelines only: make the job non-blocking, or leave the deploying to the server"
    )


def _repo_name(url: str) -> str:
    """The repository's name from its URL or path (`/srv/git/shop.git` -> `shop`)."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail.removesuffix(".git") or "app"
