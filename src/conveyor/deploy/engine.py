"""The deploy engine: turns a stack into a release and moves the project to it, with automatic
rollback, crash recovery and healing. Every operation re-observes first; nothing relies on
memory of an earlier run."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from conveyor.deploy.executor import Executor, Progress, StepFailed
from conveyor.deploy.ports import FRONTEND_RANGE, pick_port
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import ConveyorError
from conveyor.model.release import Observed, Release, RolloutKind, ServiceRelease
from conveyor.model.stack import Service, Stack
from conveyor.plan.actions import Plan, Step
from conveyor.plan.rollout import Mode, desired_services, plan_down, plan_rollout
from conveyor.router.protocol import Router
from conveyor.runtime.protocol import Runtime
from conveyor.store.db import RolloutRow, Store

log = structlog.get_logger("conveyor.deploy")

# The reason of a `recover` rollout, naming the interrupted rollout it finishes.
RECOVER_REASON = "finish interrupted rollout {}"
_RECOVER_RE = re.compile(r"finish interrupted rollout (\d+)")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    rollout_id: int | None
    status: str  # succeeded | rolled_back | failed | paused | unchanged
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


@dataclass
class Engine:
    paths: ProjectPaths
    runtime: Runtime
    router: Router
    store: Store
    actor: str = "cli"
    progress: Progress | None = None
    say: Say = field(default=lambda _msg: None)

    @property
    def project(self) -> str:
        return self.paths.project

    # observing ---------------------------------------------------------------------------------

    def observe(self) -> Observed:
        """Containers by label, joined with HAProxy's view of each server."""
        replicas = self.runtime.list_replicas(self.project)
        frontends: dict[str, int] = {}
        states: dict[tuple[str, str], tuple[str, str]] = {}
        if self.router.running():
            ports = self.store.ports()
            for name in filter(None, (self.store.get("frontends") or "").split(",")):
                if f"frontend:{name}" in ports:
                    frontends[name] = ports[f"frontend:{name}"]
            for s in self.router.servers():
                states[(s.backend, s.server)] = (s.admin_state, s.operational)
        joined = tuple(
            r.model_copy(
                update=dict(
                    zip(
                        ("router", "checks"),
                        states.get((r.service, r.replica), ("absent", "unknown")),
                        strict=True,
                    )
                )
            )
            for r in replicas
        )
        known = {(r.service, r.replica) for r in replicas}
        orphans = tuple(sorted(k for k in states if k not in known))
        return Observed(replicas=joined, frontends=frontends, orphans=orphans)

    def frontend_ports(self, release: Release) -> dict[str, int]:
        """Stable frontend port per routed service: public_port if given, else the one assigned
        the first time (kept in the state database)."""
        known = self.store.ports()
        out: dict[str, int] = {}
        taken = set(known.values())
        for name in release.order():
            svc = release.services[name].service
            if not svc.routed:
                continue
            key = f"frontend:{name}"
            want = svc.routing.public_port
            if want is not None:
                if known.get(key) != want:
                    self.store.set_port(key, want)
                out[name] = want
            elif key in known:
                out[name] = known[key]
            else:
                port = pick_port(taken, FRONTEND_RANGE)
                taken.add(port)
                self.store.set_port(key, port)
                out[name] = port
        return out

    def stats_port(self) -> int:
        known = self.store.ports()
        if "stats" in known:
            return known["stats"]
        port = pick_port(set(known.values()), FRONTEND_RANGE)
        self.store.set_port("stats", port)
        return port

    # releases ----------------------------------------------------------------------------------

    def build_release(
        self, stack: Stack, only: Iterable[str] = (), build_progress: Say | None = None
    ) -> Release:
        """Build or pull every selected service's image and compose the release. Returns the
        current release itself when nothing changed."""
        cur = self.store.current_release()
        selected = set(only)
        unknown = selected - set(stack.services)
        if unknown:
            raise ConveyorError(f"no such service: {', '.join(sorted(unknown))}")
        services: dict[str, ServiceRelease] = {}
        for name in stack.order():
            if selected and name not in selected and cur and name in cur.services:
                services[name] = cur.services[name]
                continue
            svc = stack.services[name]
            emit = _prefixed(build_progress or self.say, name)
            tag, image_id = self._image(svc, emit)
            services[name] = ServiceRelease(service=svc, image_id=image_id, image_ref=tag)
        if selected and cur:
            for name, sr in cur.services.items():
                services.setdefault(name, sr)
        if cur is not None and _same(services, cur.services):
            return cur
        keep_stack = stack
        if selected and cur:
            keep_stack = stack.model_copy(
                update={"services": {n: sr.service for n, sr in services.items()}}
            )
        return Release(
            number=0,
            project=self.project,
            services=services,
            stack=keep_stack,
            commit=git_head(stack.file),
        )

    def _image(self, svc: Service, emit: Say) -> tuple[str, str]:
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
        observed = self.observe()
        routed = [n for n in target.order() if target.services[n].service.routed]
        return plan_rollout(desired_services(target, mode), observed, frontends=routed)

    def apply(
        self,
        target: Release,
        kind: RolloutKind,
        reason: str = "",
        mode: Mode = "update",
        auto_rollback: bool = True,
        record_unchanged: bool = False,
    ) -> Outcome:
        """Move the project to `target`. On failure follow the failing service's
        failure_action: roll back to the current release, pause, or continue.

        With `record_unchanged`, a rollout is recorded even when nothing is left to do (a
        recovery: history then says how the interrupted rollout ended)."""
        t0 = time.monotonic()
        cur = self.store.current_release()
        if target.number == 0:
            target = self.store.save_release(target)
        frontends = self.frontend_ports(target)
        observed = self.observe()
        routed = [n for n in target.order() if target.services[n].service.routed]
        plan = plan_rollout(desired_services(target, mode), observed, frontends=routed)
        if plan.empty and cur is not None and cur.number == target.number and not record_unchanged:
            return Outcome(None, "unchanged", target.number)
        rid = self.store.start_rollout(
            kind, cur.number if cur else None, target.number, self.actor, reason
        )
        self.store.put("target_release", str(target.number))
        self.store.event(
            "rollout.started",
            f"{kind} to release {target.number}",
            self.actor,
            rollout=rid,
            steps=len(plan.steps),
        )
        for note in plan.notes:
            self.say(f"note: {note}")
        ex = self._executor(target, frontends, observed)
        skip: set[tuple[str, int]] = set()
        seq = 0
        while True:
            try:
                ex.run(plan, rid, skip_batches=skip, start_seq=seq)
                break
            except StepFailed as e:
                svc = target.services.get(e.step.service)
                cfg = (
                    (
                        svc.service.rollback_config
                        if mode == "rollback"
                        else svc.service.update_config
                    )
                    if svc
                    else None
                )
                action = cfg.failure_action if cfg else "rollback"
                if not auto_rollback and action == "rollback":
                    action = "pause"
                if action == "continue" and e.step.batch:
                    self.say(
                        f"{e.step.service}: {e.reason}; failure_action=continue: skipping batch"
                    )
                    self._discard(ex, e.step)
                    skip.add((e.step.service, e.step.batch))
                    seq = e.seq + 1
                    continue
                return self._failed(rid, target, cur, e, action, t0, ex)
        # The release pointer moves before the rollout is marked done: a crash in between leaves
        # the rollout `running`, which the next command recovers (finding nothing left to do).
        # The other order would leave a `succeeded` rollout whose release is not current.
        self._make_current(target, cur)
        self.store.finish_rollout(rid, "succeeded")
        self.store.event(
            "rollout.succeeded", f"{kind} to release {target.number}", self.actor, rollout=rid
        )
        return Outcome(rid, "succeeded", target.number, duration=time.monotonic() - t0)

    def _executor(
        self,
        release: Release,
        frontends: dict[str, int],
        observed: Observed,
        with_stats: bool = True,
    ) -> Executor:
        """An executor toward `release`. `down` stops HAProxy, so it needs no stats port."""
        return Executor(
            paths=self.paths,
            runtime=self.runtime,
            router=self.router,
            store=self.store,
            release=release,
            frontends=frontends,
            observed=observed,
            actor=self.actor,
            progress=self.progress,
            stats_port=self.stats_port() if with_stats else None,
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
    ) -> Outcome:
        err = str(e)
        self.store.event("rollout.failed", err, self.actor, rollout=rid, action=action)
        if action == "pause":
            self.store.finish_rollout(rid, "paused", err)
            return Outcome(rid, "paused", target.number, err, time.monotonic() - t0)
        if cur is None or cur.number == target.number:
            # Nothing earlier to go back to: remove the replica that failed, keep the rest.
            self._discard(ex, e.step)
            self.store.finish_rollout(rid, "failed", err)
            return Outcome(rid, "failed", target.number, err, time.monotonic() - t0)
        self.store.finish_rollout(rid, "failed", err)
        self.say(f"rollout failed: {err}; rolling back to release {cur.number}")
        back = self.apply(
            cur, "rollback", f"rollout {rid} failed: {err}", mode="rollback", auto_rollback=False
        )
        self.store.finish_rollout(rid, "rolled_back", err)
        status = "rolled_back" if back.ok else "failed"
        return Outcome(rid, status, cur.number, err, time.monotonic() - t0, back.rollout_id)

    def _make_current(self, target: Release, cur: Release | None) -> None:
        if cur is not None and cur.number != target.number:
            self.store.put("previous_release", str(cur.number))
        self.store.set_current_release(target.number)
        self.store.put("target_release", None)

    def rollback(self, service: str | None = None) -> Outcome:
        """Back to the previous release (or only `service` back to its previous image/spec)."""
        cur = self.store.current_release()
        prev_n = self.store.get("previous_release")
        prev = self.store.release(int(prev_n)) if prev_n else None
        if cur is None or prev is None:
            raise ConveyorError("nothing to roll back to: there is no previous release")
        if service is None:
            return self.apply(
                prev, "rollback", f"rollback to release {prev.number}", mode="rollback"
            )
        if service not in cur.services:
            raise ConveyorError(f"no such service in release {cur.number}: {service}")
        if service not in prev.services:
            raise ConveyorError(f"{service} is not in the previous release {prev.number}")
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
        for row in self.store.rollouts(status="running"):
            self.store.finish_rollout(row.id, "interrupted", "conveyor stopped during the rollout")
            self.store.event(
                "rollout.interrupted",
                f"rollout {row.id} was interrupted",
                self.actor,
                rollout=row.id,
            )
            target = self.store.release(row.to_release) if row.to_release else None
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
                RECOVER_REASON.format(row.id),
                mode=mode,
                record_unchanged=True,
            )
            outcomes.append(dataclasses.replace(o, finishes=origin))
        return outcomes

    def _origin(self, row: RolloutRow) -> RolloutRow:
        """The rollout a chain of `recover` rollouts goes back to (their reasons name it)."""
        seen: set[int] = set()
        while row.kind == "recover" and row.id not in seen:
            seen.add(row.id)
            m = _RECOVER_RE.fullmatch(row.reason)
            earlier = self.store.rollout(int(m.group(1))) if m else None
            if earlier is None:
                break
            row = earlier
        return row

    def heal(self, skip: Iterable[str] = ()) -> Outcome | None:
        """Converge to the current release: replace dead replicas, restore HAProxy. Services in
        `skip` (crash-looping, backing off) are left as they are."""
        cur = self.store.current_release()
        if cur is None:
            return None
        skipped = set(skip)
        frontends = self.frontend_ports(cur)
        observed = self.observe()
        desired = [d for d in desired_services(cur) if d.name not in skipped]
        # Only the replicas of backing-off services are hidden from the planner; servers
        # without a container are cleaned up whatever their service.
        keep = observed.model_copy(
            update={"replicas": tuple(r for r in observed.replicas if r.service not in skipped)}
        )
        routed = [n for n in cur.order() if cur.services[n].service.routed]
        plan = plan_rollout(desired, keep, frontends=routed)
        if plan.empty:
            return None
        t0 = time.monotonic()
        rid = self.store.start_rollout(
            "heal", cur.number, cur.number, self.actor, "observed state drifted"
        )
        ex = self._executor(cur, frontends, observed)
        try:
            ex.run(plan, rid)
        except StepFailed as e:
            self._discard(ex, e.step)
            self.store.finish_rollout(rid, "failed", str(e))
            self.store.event("heal.failed", str(e), self.actor, rollout=rid, service=e.step.service)
            return Outcome(
                rid,
                "failed",
                cur.number,
                str(e),
                time.monotonic() - t0,
                services=tuple(plan.services()),
            )
        self.store.finish_rollout(rid, "succeeded")
        return Outcome(
            rid,
            "succeeded",
            cur.number,
            duration=time.monotonic() - t0,
            services=tuple(plan.services()),
        )

    def down(self) -> Outcome:
        observed = self.observe()
        plan = plan_down(observed)
        cur = self.store.current_release()
        t0 = time.monotonic()
        rid = self.store.start_rollout(
            "down", cur.number if cur else None, None, self.actor, "down"
        )
        release = cur or Release(
            number=0,
            project=self.project,
            services={},
            stack=Stack(project=self.project, file="", services={}),
        )
        ex = self._executor(release, {}, observed, with_stats=False)
        try:
            ex.run(plan, rid)
        except StepFailed as e:
            self.store.finish_rollout(rid, "failed", str(e))
            raise
        self.router.stop()
        self.store.put("frontends", "")
        self.store.finish_rollout(rid, "succeeded")
        self.store.event("down", "stopped every replica", self.actor, rollout=rid)
        return Outcome(rid, "succeeded", None, duration=time.monotonic() - t0)


def _same(a: dict[str, ServiceRelease], b: dict[str, ServiceRelease]) -> bool:
    """Same services running the same images: a new tag for an identical image is no change."""
    return a.keys() == b.keys() and all(
        a[n].service == b[n].service and a[n].image_id == b[n].image_id for n in a
    )


def _prefixed(say: Say, prefix: str) -> Say:
    def emit(line: str) -> None:
        say(f"{prefix}: {line}")

    return emit


def git_head(compose_file: str) -> str | None:
    """The commit the compose file's checkout is at, if it is in a git work tree."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(compose_file).parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
