"""The deploy engine: turns a stack into a release and moves the project to it, with automatic
rollback, crash recovery and healing. Every operation re-observes first; nothing relies on
memory of an earlier run."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from conveyor.deploy.executor import Executor, PortPicker
from conveyor.deploy.ports import FRONTEND_RANGE, pick_port
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import (
    ConveyorError,
    GitError,
    NothingToRollBack,
    StepFailed,
    UnknownService,
)
from conveyor.host import git
from conveyor.model.release import (
    Observed,
    ObservedReplica,
    OutcomeStatus,
    Release,
    RolloutKind,
    ServiceRelease,
)
from conveyor.model.stack import Service, Stack, UpdateConfig
from conveyor.plan.actions import Plan, Step
from conveyor.plan.drift import corrections
from conveyor.plan.fleet_assign import keep_global
from conveyor.plan.network import (
    DesiredNetwork,
    SubnetPool,
    assign_slots,
    desired_address,
    desired_networks,
)
from conveyor.plan.rollout import (
    GlobalHosts,
    Mode,
    desired_services,
    plan_down,
    plan_rollout,
)
from conveyor.plan.routes import router_config
from conveyor.router.protocol import Router
from conveyor.runtime.protocol import Progress, Runtime
from conveyor.store.db import RolloutRow, Store
from conveyor.store.timeline import Timeline


@dataclass(frozen=True)
class Outcome:
    rollout_id: int | None
    status: OutcomeStatus
    release: int | None
    error: str | None = None
    duration: float = 0.0
    rollback_id: int | None = None
    services: tuple[str, ...] = ()  # the services the rollout touched
    # A recovery: the rollout a crash interrupted (the first of a chain of recoveries).
    finishes: RolloutRow | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "unchanged")

    @property
    def finished_rollback(self) -> bool:
        """A recovery that finished a `conveyor rollback` to another release (an automatic
        rollback after a failed rollout stays on the current release)."""
        f = self.finishes
        return f is not None and f.kind == "rollback" and f.from_release != f.to_release


class Placer(Protocol):
    """Where replicas run on a fleet (deploy.fleet_runtime.FleetRuntime); None on one host."""

    def assign(self, plan: Plan, release: Release, observed: Observed) -> Plan:
        """`plan` with every `start` given its host."""
        ...

    def global_hosts(self, release: Release, observed: Observed) -> Mapping[str, GlobalHosts]:
        """The hosts of each `deploy.mode: global` service of `release`."""
        ...

    def moves(
        self, release: Release, observed: Observed
    ) -> Mapping[str, Sequence[tuple[str, str]]]:
        """Service -> (replica, why) of the running replicas `release`'s placement no longer
        allows where they run (plan.fleet_assign.moves)."""
        ...


class Retirement(Protocol):
    """Taking the project off hosts that left the fleet (deploy.fleet_retire.FleetRetirement;
    plan.fleet_retire); None on one host. A deploy, `plan`, `status` and `down` observe
    those hosts' replicas; a heal does not."""

    def left_replicas(self, project: str) -> list[ObservedReplica]:
        """The running replicas on the hosts that left and answer (asked now)."""
        ...

    def moves(
        self, release: Release, observed: Observed
    ) -> Mapping[str, Sequence[tuple[str, str]]]:
        """Service -> (replica, why) of those replicas: moved by the deploy."""
        ...

    def notes(self) -> list[str]:
        """What the last look found, per host that left (for the plan and `status`)."""
        ...

    def begin(self) -> None:
        """Before the rollout: the edge no longer sends the hosts that left requests."""
        ...

    def finish(self, project: str) -> list[tuple[str, str | None]]:
        """After it: what is left of the project there removed, each host forgotten;
        (host, None) when done, (host, why) when not (tried again at the next deploy)."""
        ...


@dataclass
class Engine:
    """Reports only through `timeline` (bound to the project and environment)."""

    paths: ProjectPaths
    runtime: Runtime
    router: Router
    store: Store
    timeline: Timeline
    pool: SubnetPool = dataclasses.field(default_factory=SubnetPool)  # project networks' subnets
    # A fleet: gives each `start` of a plan its host, and a global service its hosts
    # (deploy.fleet_runtime.FleetRuntime); None on one host.
    placer: Placer | None = None
    # A fleet: the content digests of the controller's files a service's replicas mount
    # (deploy.fleet_files.release_digests), recorded in the release; None on one host.
    file_digests: Callable[[Service, Stack], dict[str, str]] | None = None
    # A fleet: picks a host-networking replica's port free on its host
    # (FleetRuntime.pick_port); None: free on this machine (deploy.ports).
    port_picker: PortPicker | None = None
    # A fleet: takes the project off the hosts that left it (deploy.fleet_retire); None on one
    # host (and for a fleet learned from AWS, whose hosts that leave are terminated).
    retirement: Retirement | None = None
    # The hosts this engine took the project off (they left the fleet), for the caller: an
    # agent started before they left still counts them as app hosts (app.deploy restarts it).
    retired: list[str] = dataclasses.field(default_factory=list)

    @property
    def project(self) -> str:
        return self.paths.project

    @property
    def actor(self) -> str:
        return self.timeline.actor

    def say(self, message: str) -> None:
        self.timeline.emit("rollout.message", message)

    # observing ---------------------------------------------------------------------------------

    def observe(self, release: Release | None = None, *, left: bool = False) -> Observed:
        """Containers, networks and service addresses by label, joined with HAProxy's view of
        each server. `release` names the external networks to look for (default: the current
        release's). `left`: also the replicas on hosts that left the fleet (a deploy, `plan`,
        `status`, `down`; not a heal)."""
        release = release if release is not None else self.store.current_release()
        external = [n.docker_name for n in _networks(release) if n.external]
        replicas = self.runtime.list_replicas(self.project)
        if left and self.retirement is not None:
            replicas = [*replicas, *self.retirement.left_replicas(self.project)]
        networks = tuple(self.runtime.list_networks(self.project, external))
        addresses = tuple(self.runtime.list_addresses(self.project))
        frontends: dict[str, int] = {}
        states: dict[tuple[str, str], tuple[str, str, int | None]] = {}
        if self.router.running():
            ports = self.store.ports.frontend_ports()
            for name in self.store.environment.frontends():
                if name in ports:
                    frontends[name] = ports[name]
            for s in self.router.servers():
                states[(s.backend, s.server)] = (s.admin_state, s.operational, s.weight)
        joined = tuple(
            r.model_copy(
                update=dict(
                    zip(
                        ("router", "checks", "weight"),
                        states.get((r.service, r.replica), ("absent", "unknown", None)),
                        strict=True,
                    )
                )
            )
            for r in replicas
        )
        known = {(r.service, r.replica) for r in replicas}
        orphans = tuple(sorted(k for k in states if k not in known))
        return Observed(
            replicas=joined,
            frontends=frontends,
            orphans=orphans,
            networks=networks,
            addresses=addresses,
        )

    def slots(self, release: Release, keep: bool = False) -> dict[str, int]:
        """The stable slot of every service address `release` needs (plan.network): those the
        database knows, new ones given the smallest free slot (recorded when `keep`)."""
        known = self.store.address_slots.all()
        needing = [n for n in release.order() if desired_address(release.stack, n) is not None]
        slots = assign_slots(known, needing)
        if keep:
            for service, slot in slots.items():
                if service not in known:
                    self.store.address_slots.set(service, slot)
        return slots

    def _router_stale(self, release: Release, observed: Observed, ports: dict[str, int]) -> bool:
        """Whether HAProxy runs other listeners, binds or checks than `release` asks of the
        services it serves for it (a reload is then planned; servers are not compared)."""
        running = self.router.shape()
        if running is None:
            return False
        have = {f.service: f for f in running.frontends}
        ex = self._executor(release, ports, observed, self.timeline, with_stats=False)
        wanted = router_config(release, sorted(have), ports, ex.namespaces(), None)
        return any(f != have[f.service] for f in wanted.frontends if f.service in have)

    def _plan(
        self,
        target: Release,
        observed: Observed,
        ports: dict[str, int],
        mode: Mode = "update",
        skip: set[str] | None = None,
        move: bool = True,
    ) -> Plan:
        """The plan toward `target` from `observed`; services in `skip` (backing off) keep
        their replicas as they are. On a fleet, `move` (a deploy, not a heal) replaces the
        replicas running where the placement no longer allows them; a heal (`move` False)
        leaves them: it replaces what was lost, and a placement change is read by a deploy."""
        observed = observed.model_copy(
            update={"router_stale": self._router_stale(target, observed, ports)}
        )
        per_host = self.placer.global_hosts(target, observed) if self.placer else None
        moves = None
        if self.placer is not None and move:
            moves = self.placer.moves(target, observed)
            if self.retirement is not None:
                moves = _merged(moves, self.retirement.moves(target, observed))
        elif per_host:
            per_host = keep_global(per_host, observed)
        desired = desired_services(target, mode, self.slots(target), per_host, moves)
        skip = skip or set()
        held = [d for d in desired if d.name in skip]
        if held:
            desired = [d for d in desired if d.name not in skip]
            # Only the replicas of backing-off services are hidden from the planner (their
            # service addresses stay); servers without a container are cleaned up whatever
            # their service.
            observed = observed.model_copy(
                update={"replicas": tuple(r for r in observed.replicas if r.service not in skip)}
            )
        routed = [n for n in target.order() if target.services[n].service.routed]
        plan = plan_rollout(
            desired, observed, frontends=routed, networks=_networks(target), held=held
        )
        if self.placer is not None:
            plan = self.placer.assign(plan, target, observed)
        if move and self.retirement is not None:
            notes = self.retirement.notes()
            if notes:
                plan = plan.model_copy(update={"notes": (*plan.notes, *notes)})
        return plan

    def desired_replicas(self, release: Release, observed: Observed) -> dict[str, int]:
        """How many replicas each service of `release` should have: its count, or on a
        fleet, for a `deploy.mode: global` service, the app hosts it runs on (none when no
        app host that is up allows it: a plan would say why)."""
        try:
            per_host = self.placer.global_hosts(release, observed) if self.placer else {}
        except ConveyorError:
            per_host = {
                name: GlobalHosts(hosts=())
                for name, sr in release.services.items()
                if sr.service.placement is not None and sr.service.placement.mode == "global"
            }
        return {
            name: len(per_host[name].hosts + per_host[name].holding)
            if name in per_host
            else sr.service.replicas
            for name, sr in release.services.items()
        }

    def frontend_ports(self, release: Release) -> dict[str, int]:
        """Stable frontend port per routed service: public_port if given, else the one assigned
        the first time (kept in the state database)."""
        ports = self.store.ports
        known = ports.frontend_ports()
        out: dict[str, int] = {}
        taken = ports.taken()
        for name in release.order():
            svc = release.services[name].service
            if not svc.routed:
                continue
            want = svc.routing.public_port
            if want is not None:
                if known.get(name) != want:
                    ports.set_frontend(name, want)
                out[name] = want
            elif name in known:
                out[name] = known[name]
            else:
                port = pick_port(taken, FRONTEND_RANGE)
                taken.add(port)
                ports.set_frontend(name, port)
                out[name] = port
        return out

    def stats_port(self) -> int:
        known = self.store.ports.stats_port()
        if known is not None:
            return known
        port = pick_port(self.store.ports.taken(), FRONTEND_RANGE)
        self.store.ports.set_stats(port)
        return port

    # releases ----------------------------------------------------------------------------------

    def build_release(
        self,
        stack: Stack,
        only: Iterable[str] = (),
        commit: str | None = None,
        pipeline: int | None = None,
        job: int | None = None,
        images: Mapping[str, tuple[str, str]] | None = None,
    ) -> Release:
        """Build or pull every selected service's image and compose the release. Returns the
        current release itself when nothing changed. `commit` defaults to the compose file's
        checkout; `pipeline` and `job` name the CI job deploying, if one is. `images` gives
        services their image as (reference, image id) instead (a promotion runs the images
        the source environment's release runs); such an image must be on this host."""
        cur = self.store.current_release()
        selected = set(only)
        unknown = selected - set(stack.services)
        if unknown:
            raise UnknownService(
                f"no such service: {', '.join(sorted(unknown))} "
                f"(services: {', '.join(stack.services)})"
            )
        services: dict[str, ServiceRelease] = {}
        for name in stack.order():
            if selected and name not in selected and cur and name in cur.services:
                services[name] = cur.services[name]
                continue
            svc = stack.services[name]
            emit = self._image_output(name)
            given = (images or {}).get(name)
            tag, image_id = given if given is not None else self._image(svc, emit)
            svc = svc.with_image_ports(self.runtime.exposed_ports(image_id))
            files = self.file_digests(svc, stack) if self.file_digests is not None else {}
            services[name] = ServiceRelease(
                service=svc, image_id=image_id, image_ref=tag, files=files
            )
        if selected and cur:
            for name, sr in cur.services.items():
                services.setdefault(name, sr)
        if cur is not None and _same(services, cur.services):
            return cur
        # The release's stack holds the services as released (image ports added; services
        # not selected kept at the current release's spec), in the file's order.
        names = [*stack.services, *(n for n in services if n not in stack.services)]
        keep_stack = stack.model_copy(update={"services": {n: services[n].service for n in names}})
        return Release(
            number=0,
            project=self.project,
            services=services,
            stack=keep_stack,
            commit=commit or git_head(stack.file),
            pipeline=pipeline,
            job=job,
        )

    def _image_output(self, service: str) -> Progress:
        def emit(line: str) -> None:
            self.timeline.emit("image.output", line, service=service)

        return emit

    def _image(self, svc: Service, emit: Progress) -> tuple[str, str]:
        """(reference, image id) per Compose's `pull_policy` (see model.stack.Service)."""
        policy = svc.pull_policy or ("build" if svc.build is not None else "missing")
        if svc.image is not None and policy != "build":
            try:
                if policy == "never":
                    found = self.runtime.local_image(svc.image)
                    if found is None:
                        raise ConveyorError(f"{svc.image} is not present (pull_policy: never)")
                    return svc.image, found
                if policy == "always":
                    return svc.image, self.runtime.pull(svc.image, emit)
                return svc.image, self.runtime.ensure_image(svc.image, emit)
            except ConveyorError as e:
                if svc.build is None or policy == "never":
                    raise
                emit(f"cannot pull {svc.image} ({e}); building it")
        assert svc.build is not None  # the spec guarantees build or image
        emit("building image")
        tag, image_id = self.runtime.build(self.project, svc, emit)
        if svc.image is not None:
            self.runtime.tag(image_id, svc.image)  # as `docker compose build` names it
            return svc.image, image_id
        return tag, image_id

    # moving the project ------------------------------------------------------------------------

    def plan(self, target: Release, mode: Mode = "update") -> Plan:
        ports = self.store.ports.frontend_ports()
        return self._plan(target, self.observe(target, left=True), ports, mode)

    def apply(
        self,
        target: Release,
        kind: RolloutKind,
        reason: str = "",
        mode: Mode = "update",
        auto_rollback: bool = True,
        recovers: int | None = None,
        undoes: int | None = None,
    ) -> Outcome:
        """Move the project to `target`. On failure follow the failing service's
        failure_action (roll back to the current release, pause, or continue), after the
        failures `max_failure_ratio` tolerates.

        A recovery (`recovers` set) is recorded even when nothing is left to do: history then
        says how the interrupted rollout ended. An automatic rollback names the rollout it
        `undoes` in its events, so a reader (notifications) can tell it from one a person asked
        for."""
        t0 = time.monotonic()
        cur = self.store.current_release()
        if target.number == 0:
            target = self.store.releases.save(target)
            self.timeline.emit(
                "release.created",
                f"release {target.number}",
                release=target.number,
                commit=target.commit,
                pipeline=target.pipeline,
                job=target.job,
                data={"services": {n: sr.image_ref for n, sr in target.services.items()}},
            )
        frontends = self.frontend_ports(target)
        observed = self.observe(target, left=True)
        plan = self._plan(target, observed, frontends, mode)
        if self.retirement is not None:
            self.retirement.begin()
        if plan.empty and cur is not None and cur.number == target.number and recovers is None:
            self._retire(self.timeline)
            return Outcome(None, "unchanged", target.number)
        rid = self.store.rollouts.start(
            kind,
            cur.number if cur else None,
            target.number,
            self.actor,
            reason,
            recovers=recovers,
            environment=self.timeline.subject.environment,
        )
        tl = self.timeline.bind(rollout=rid, release=target.number, commit=target.commit)
        self.store.environment.set_pointer("target_release", target.number)
        facts: dict[str, Any] = {"kind": kind} | ({"undoes": undoes} if undoes else {})
        tl.emit(
            "rollout.started",
            f"{kind} to release {target.number}",
            data={**facts, "steps": len(plan.steps), "from_release": cur and cur.number},
        )
        for note in plan.notes:
            tl.emit("rollout.note", note, level="warning")
        ex = self._executor(target, frontends, observed, tl)
        skip: set[tuple[str, int]] = set()
        failures: dict[str, int] = {}
        seq = 0
        while True:
            try:
                ex.run(plan, rid, skip_batches=skip, start_seq=seq)
                break
            except StepFailed as e:
                counts = self.desired_replicas(target, observed)
                action = self._failure_action(target, e, mode, auto_rollback, failures, counts)
                if action == "continue" and e.step.batch:
                    tl.emit(
                        "rollout.message",
                        f"{e.step.service}: {e.reason}; {self._why_continue(target, e, mode)}: "
                        "skipping batch",
                        level="warning",
                        service=e.step.service,
                    )
                    self._discard(ex, e.step)
                    skip.add((e.step.service, e.step.batch))
                    seq = e.seq + 1
                    continue
                return self._failed(rid, target, cur, e, action, t0, ex, tl, facts)
        # The release pointer moves before the rollout is marked done: a crash in between leaves
        # the rollout `running`, which the next command recovers (finding nothing left to do).
        # The other order would leave a `succeeded` rollout whose release is not current.
        self.store.environment.make_current(target.number)
        self.store.rollouts.finish(rid, "succeeded")
        self._retire(tl)
        took = time.monotonic() - t0
        tl.emit(
            "rollout.succeeded",
            f"{kind} to release {target.number}",
            data={**facts, "seconds": round(took, 3), "skipped_batches": len(skip)},
        )
        return Outcome(rid, "succeeded", target.number, duration=took)

    def _retire(self, tl: Timeline) -> None:
        """After a rollout (or a `down`): the project off the hosts that left the fleet and
        answered, each recorded; one that could not be cleaned is tried again next time."""
        if self.retirement is None:
            return
        for host, error in self.retirement.finish(self.project):
            if error is None:
                self.retired.append(host)
                tl.emit(
                    "host.retired",
                    f"{host} left the fleet: the project's replicas, HAProxy, containers and "
                    "files there are removed",
                    data={"host": host},
                )
            else:
                tl.emit(
                    "host.retired",
                    f"{host} left the fleet, but removing the project there failed: {error} "
                    "(tried again at the next deploy)",
                    level="warning",
                    data={"host": host, "error": error},
                )

    def _failure_action(
        self,
        target: Release,
        e: StepFailed,
        mode: Mode,
        auto_rollback: bool,
        failures: dict[str, int],
        counts: Mapping[str, int] | None = None,
    ) -> str:
        """What to do about a failed step: `continue` while the service's failures stay within
        `max_failure_ratio` of its replicas, else its `failure_action` (a rollback that may
        not roll back pauses). `counts`: the services' desired replicas (a global service's
        hosts on a fleet)."""
        cfg = self._update_config(target, e.step.service, mode)
        if cfg is None:
            return "rollback" if auto_rollback else "pause"
        failures[e.step.service] = failures.get(e.step.service, 0) + 1
        replicas = max(
            1,
            (counts or {}).get(e.step.service, target.services[e.step.service].service.replicas),
        )
        if e.step.batch and failures[e.step.service] / replicas <= cfg.max_failure_ratio:
            return "continue"
        action = cfg.failure_action
        if not auto_rollback and action == "rollback":
            action = "pause"
        return action

    def _why_continue(self, target: Release, e: StepFailed, mode: Mode) -> str:
        cfg = self._update_config(target, e.step.service, mode)
        if cfg is not None and cfg.failure_action == "continue":
            return "failure_action=continue"
        return f"within max_failure_ratio={cfg.max_failure_ratio:g}" if cfg else "continue"

    @staticmethod
    def _update_config(target: Release, service: str, mode: Mode) -> UpdateConfig | None:
        sr = target.services.get(service)
        if sr is None:
            return None
        return sr.service.rollback_config if mode == "rollback" else sr.service.update_config

    def _executor(
        self,
        release: Release,
        frontends: dict[str, int],
        observed: Observed,
        timeline: Timeline,
        with_stats: bool = True,
    ) -> Executor:
        """An executor toward `release`. `down` stops HAProxy, so it needs no stats port; it and
        read-only uses (without stats) record no new address slot either."""
        return Executor(
            paths=self.paths,
            runtime=self.runtime,
            router=self.router,
            store=self.store,
            release=release,
            frontends=frontends,
            observed=observed,
            timeline=timeline,
            stats_port=self.stats_port() if with_stats else None,
            networks=tuple(_networks(release)),
            pool=self.pool,
            slots=self.slots(release, keep=with_stats),
            port_picker=self.port_picker,
        )

    def _discard(self, ex: Executor, step: Step) -> None:
        """Take a failed new replica out (failure_action=continue or a failed first start)."""
        pl = ex.placements.get(step.replica)
        if pl is None:
            return
        with contextlib.suppress(ConveyorError):  # the router may never have seen it
            self.router.remove_server(step.service, step.replica)
        self.runtime.stop(pl.container_id, "SIGKILL", 0)
        self.runtime.remove(pl.container_id)
        ex.placements.pop(step.replica, None)

    def _failed(
        self,
        rid: int,
        target: Release,
        cur: Release | None,
        e: StepFailed,
        action: str,
        t0: float,
        ex: Executor,
        tl: Timeline,
        facts: dict[str, Any],
    ) -> Outcome:
        err = str(e)
        if action == "pause":
            self.store.rollouts.finish(rid, "paused", err)
            tl.emit("rollout.paused", err, level="warning", data={**facts, "action": action})
            return Outcome(rid, "paused", target.number, err, time.monotonic() - t0)
        if cur is None or cur.number == target.number:
            # Nothing earlier to go back to: remove the replica that failed, keep the rest.
            self._discard(ex, e.step)
            self.store.rollouts.finish(rid, "failed", err)
            tl.emit("rollout.failed", err, level="error", data={**facts, "action": action})
            return Outcome(rid, "failed", target.number, err, time.monotonic() - t0)
        self.store.rollouts.finish(rid, "failed", err)
        # `rolling_back`: the verdict is the rolled_back (or failed) event that follows.
        data = {**facts, "action": action, "rolling_back": True}
        tl.emit("rollout.failed", err, level="error", data=data)
        tl.emit("rollout.message", f"rollout failed: {err}; rolling back to release {cur.number}")
        back = self.apply(
            cur,
            "rollback",
            f"rollout {rid} failed: {err}",
            mode="rollback",
            auto_rollback=False,
            undoes=rid,
        )
        self.store.rollouts.finish(rid, "rolled_back", err)
        status: OutcomeStatus = "rolled_back" if back.ok else "failed"
        tl.emit(
            "rollout.rolled_back" if back.ok else "rollout.failed",
            f"rolled back to release {cur.number}"
            if back.ok
            else f"rollback to release {cur.number} failed: {back.error}",
            level="warning" if back.ok else "error",
            data={**facts, "rollback": back.rollout_id, "to_release": cur.number},
        )
        return Outcome(rid, status, cur.number, err, time.monotonic() - t0, back.rollout_id)

    def rollback(self, service: str | None = None, to: int | None = None) -> Outcome:
        """Back to the previous release, or to release `to` (or only `service` back to its
        image/spec in that release)."""
        cur = self.store.current_release()
        prev = self.store.previous_release() if to is None else self.store.releases.get(to)
        if to is not None and prev is None:
            raise NothingToRollBack(f"there is no release {to} (`conveyor history` lists what ran)")
        if to is not None and cur is not None and prev is not None and prev.number == cur.number:
            raise NothingToRollBack(f"release {to} is the one running")
        if cur is None or prev is None:
            raise NothingToRollBack(
                "nothing to roll back to: there is no previous release "
                "(`conveyor history` lists what ran)"
            )
        if service is None:
            return self.apply(
                prev, "rollback", f"rollback to release {prev.number}", mode="rollback"
            )
        if service not in cur.services:
            raise UnknownService(f"no such service in release {cur.number}: {service}")
        if service not in prev.services:
            raise NothingToRollBack(f"{service} is not in release {prev.number}")
        services = {**cur.services, service: prev.services[service]}
        mixed = cur.model_copy(
            update={
                "number": 0,
                "services": services,
                "stack": cur.stack.model_copy(
                    update={"services": {n: sr.service for n, sr in services.items()}}
                ),
            }
        )
        return self.apply(
            mixed, "rollback", f"rollback {service} to release {prev.number}", mode="rollback"
        )

    def recover(self) -> list[Outcome]:
        """Finish (or, failing that, roll back) rollouts a crash interrupted."""
        outcomes: list[Outcome] = []
        for row in self.store.rollouts.running():
            self.store.rollouts.finish(row.id, "interrupted", "conveyor stopped during the rollout")
            self.timeline.emit(
                "rollout.interrupted",
                f"rollout {row.id} was interrupted",
                level="warning",
                rollout=row.id,
                release=row.to_release,
            )
            target = self.store.releases.get(row.to_release)
            if target is None:
                continue
            self.say(
                f"recovering interrupted rollout {row.id} ({row.kind} to release {target.number})"
            )
            # An interrupted recovery finishes what the rollout it recovered was doing.
            origin = self._origin(row)
            mode: Mode = "rollback" if origin.kind == "rollback" else "update"
            o = self.apply(
                target,
                "recover",
                f"finish interrupted rollout {row.id}",
                mode=mode,
                recovers=row.id,
            )
            outcomes.append(dataclasses.replace(o, finishes=origin))
        return outcomes

    def _origin(self, row: RolloutRow) -> RolloutRow:
        """The rollout a chain of `recover` rollouts goes back to."""
        seen: set[int] = set()
        while row.kind == "recover" and row.recovers is not None and row.id not in seen:
            seen.add(row.id)
            earlier = self.store.rollouts.get(row.recovers)
            if earlier is None:
                break
            row = earlier
        return row

    def heal_plan(self, skip: Iterable[str] = ()) -> Plan:
        """What `heal` would do now (read-only: observes, changes nothing)."""
        cur = self.store.current_release()
        if cur is None:
            return Plan()
        ports = self.store.ports.frontend_ports()
        return self._plan(cur, self.observe(cur), ports, skip=set(skip), move=False)

    def heal(self, skip: Iterable[str] = ()) -> Outcome | None:
        """Converge to the current release: replace dead replicas, restore HAProxy. Services in
        `skip` (crash-looping, backing off) are left as they are."""
        cur = self.store.current_release()
        if cur is None:
            return None
        frontends = self.frontend_ports(cur)
        observed = self.observe(cur)
        plan = self._plan(cur, observed, frontends, skip=set(skip), move=False)
        if plan.empty:
            return None
        t0 = time.monotonic()
        rid = self.store.rollouts.start(
            "heal",
            cur.number,
            cur.number,
            self.actor,
            "observed state drifted",
            environment=self.timeline.subject.environment,
        )
        tl = self.timeline.bind(rollout=rid, release=cur.number, commit=cur.commit)
        services = tuple(plan.services())
        ex = self._executor(cur, frontends, observed, tl)
        try:
            ex.run(plan, rid)
        except StepFailed as e:
            self._discard(ex, e.step)
            self.store.rollouts.finish(rid, "failed", str(e))
            took = time.monotonic() - t0
            tl.emit("heal.failed", str(e), level="error", service=e.step.service)
            return Outcome(rid, "failed", cur.number, str(e), took, services=services)
        self.store.rollouts.finish(rid, "succeeded")
        took = time.monotonic() - t0
        tl.emit(
            "heal.succeeded",
            f"healed {', '.join(services)}",
            # what drifted, in words: the server reports it as drift.corrected
            data={
                "services": list(services),
                "seconds": round(took, 3),
                "corrections": corrections(plan),
            },
        )
        return Outcome(rid, "succeeded", cur.number, duration=took, services=services)

    def down(self) -> Outcome:
        observed = self.observe(left=True)
        cur = self.store.current_release()
        plan = plan_down(observed, cur.order() if cur else ())
        t0 = time.monotonic()
        rid = self.store.rollouts.start(
            "down",
            cur.number if cur else None,
            None,
            self.actor,
            "down",
            environment=self.timeline.subject.environment,
        )
        tl = self.timeline.bind(rollout=rid)
        release = cur or Release(
            number=0,
            project=self.project,
            services={},
            stack=Stack(project=self.project, file="", services={}),
        )
        ex = self._executor(release, {}, observed, tl, with_stats=False)
        try:
            ex.run(plan, rid)
        except StepFailed as e:
            self.store.rollouts.finish(rid, "failed", str(e))
            raise
        self.router.stop()
        self._retire(tl)
        self.store.environment.set_frontends([])
        self.store.rollouts.finish(rid, "succeeded")
        took = time.monotonic() - t0
        tl.emit("project.down", "stopped every replica", data={"seconds": round(took, 3)})
        return Outcome(rid, "succeeded", None, duration=took)


def _merged(
    a: Mapping[str, Sequence[tuple[str, str]]], b: Mapping[str, Sequence[tuple[str, str]]]
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Two service -> (replica, why) maps as one."""
    out = {name: tuple(pairs) for name, pairs in a.items()}
    for name, pairs in b.items():
        out[name] = (*out.get(name, ()), *pairs)
    return out


def _networks(release: Release | None) -> list[DesiredNetwork]:
    return desired_networks(release.stack) if release is not None else []


def _same(a: dict[str, ServiceRelease], b: dict[str, ServiceRelease]) -> bool:
    """Same services running the same images (and, on a fleet, the same files): a new tag
    for an identical image is no change."""
    return a.keys() == b.keys() and all(
        a[n].service == b[n].service and a[n].image_id == b[n].image_id and a[n].files == b[n].files
        for n in a
    )


def git_head(compose_file: str) -> str | None:
    """The commit the compose file's checkout is at, if it is in a git work tree (a missing
    git, like a directory outside git, just means no commit)."""
    try:
        return git.head(Path(compose_file).parent)
    except GitError:
        return None
