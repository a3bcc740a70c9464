"""Use cases on one project: up, plan, deploy, rollback, status, history, logs, down, agent.

Each takes a `Project` (opened by the entry point), composes the layers (lock → recover →
build → apply) and returns a typed result; progress reaches the caller as timeline events
through the project's subscribers. Errors are ConveyorErrors; nothing here prints."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from conveyor.app import logs as logs_app
from conveyor.app import metrics as metrics_app
from conveyor.app.agent import agent_pid, restart_agent, start_agent, stop_agent
from conveyor.app.checks import checks_health, ensure_checks, stop_checks
from conveyor.app.project import Project
from conveyor.app.views import (
    AgentView,
    DeployResult,
    DownResult,
    HistoryView,
    PlanStep,
    PlanView,
    ReleaseImage,
    ReleaseView,
    ReplicaView,
    RolloutResult,
    RolloutView,
    RouterView,
    ServiceURL,
    ServiceView,
    StatusView,
    UpResult,
)
from conveyor.deploy.engine import Engine, Outcome
from conveyor.deploy.project import project_lock
from conveyor.deploy.reconciler import Reconciler
from conveyor.errors import UnknownService
from conveyor.model.release import Release
from conveyor.model.stack import Service
from conveyor.plan.routes import ALL_INTERFACES
from conveyor.store.db import RolloutRow, Store

if TYPE_CHECKING:
    from conveyor.router.fleet import FleetRouter


def result(o: Outcome) -> RolloutResult:
    return RolloutResult(
        status=o.status,
        release=o.release,
        rollout=o.rollout_id,
        error=o.error,
        seconds=round(o.duration, 3),
        rollback=o.rollback_id,
    )


def up(
    project: Project,
    agent: bool = True,
    images: Mapping[str, tuple[str, str]] | None = None,
    checks: bool = True,
    metrics: bool = True,
    logs: bool = True,
) -> UpResult:
    """Build images, start every service, wait until healthy; leave the reconciler running.
    `images`: services given their (reference, image id) instead of a build or pull.
    `checks`: run Nagios for the project (unless CONVEYOR_CHECKS=off); False stops it.
    `metrics`: start the project's Prometheus, Alertmanager and node exporter (docs/metrics.md);
    False turns them off for the project until an `up` with True.
    `logs`: the agent collects the containers' output into the log store (docs/logs.md)."""
    stack = project.stack()
    paths = project.paths()
    with project_lock(paths):
        engine = project.engine()
        recovered = [result(o) for o in engine.recover()]
        release = _build(engine, project, [], images)
        o = engine.apply(release, "up", "conveyor up")
    if engine.retired and agent:
        stop_agent(paths)  # it still counts the hosts that left: started again below
    elif engine.retired:
        restart_agent(project)
    out = UpResult(project=stack.project, outcome=result(o), recovered=recovered)
    if not o.ok:
        return out
    if checks:
        out.checks_error = ensure_checks(project, engine)
        out.checks = out.checks_error is None and checks_health(paths).running
    else:
        stop_checks(paths)
    metrics_app.set_enabled(paths, metrics)
    if metrics:
        started = metrics_app.ensure_metrics(project, engine, agent=agent)
        out.components = started.components
        if started.error:
            out.warnings.append(f"metrics: {started.error}")
    else:
        metrics_app.stop_metrics(paths)
    if agent:
        out.agent_pid = start_agent(project, checks=checks, logs=logs)
        out.agent_log = str(paths.agent_log)
    out.urls = urls(engine)
    return out


def _fleet_router(engine: Engine) -> FleetRouter | None:
    from conveyor.router.fleet import FleetRouter

    return engine.router if isinstance(engine.router, FleetRouter) else None


def _frontend_host(engine: Engine, service: Service) -> str | None:
    """Where users reach `service`'s stable frontend port: 127.0.0.1 on one host, the edge
    on a fleet (None where it is not reachable from outside the edge: FleetRouter.public_host)."""
    fleet = _fleet_router(engine)
    if fleet is None:
        return "127.0.0.1"
    return fleet.public_host(assigned=service.routing.public_port is None)


def urls(engine: Engine) -> list[ServiceURL]:
    cur = engine.store.current_release()
    if cur is None:
        return []
    ports = engine.store.ports.frontend_ports()
    fleet = _fleet_router(engine)
    edge = fleet.public_host() if fleet is not None else None
    out: list[ServiceURL] = []
    for name in cur.order():
        svc = cur.services[name].service
        # Where users reach the service: its published ports as the file writes them; a
        # service that publishes none is shown at the loopback frontend Conveyor gave it.
        # On a fleet both are the edge's (plan.edge); nothing is shown when a load balancer
        # outside Conveyor is the edge (its DNS name is the AWS stack's `LoadBalancerDns`).
        published = [p for p in svc.ports if p.published is not None and p.protocol == "tcp"]
        for p in published if fleet is None or edge is not None else ():
            everywhere = p.host_ip in (None, "", ALL_INTERFACES, "::")
            host = edge or ("127.0.0.1" if everywhere else p.host_ip)
            scheme = "http" if p.target in svc.http_ports() else "tcp"
            out.append(ServiceURL(name=name, url=f"{scheme}://{host}:{p.published}/"))
        host = _frontend_host(engine, svc)
        if name in ports and not published and host is not None:
            out.append(ServiceURL(name=name, url=f"{_scheme(svc)}://{host}:{ports[name]}/"))
    stats = engine.store.ports.stats_port()
    # On a fleet each app host's HAProxy has its own stats page, on that host's 127.0.0.1.
    if stats is not None and fleet is None:
        out.append(ServiceURL(name="haproxy stats", url=f"http://127.0.0.1:{stats}/stats"))
    return out


def plan(project: Project, services: list[str]) -> PlanView:
    """What a deploy would change. Builds images (cached) to learn whether they changed."""
    engine = project.engine()
    release = _build(engine, project, services)
    p = engine.plan(release)
    cur = engine.store.current_release()
    return PlanView(
        from_release=cur.number if cur else None,
        new_release=release.number == 0,
        release=release.number or None,
        steps=[PlanStep(**s.model_dump(mode="json"), description=s.describe()) for s in p.steps],
        notes=list(p.notes),
        warnings=[w.render() for w in project.warnings()],
    )


def deploy(
    project: Project,
    services: list[str],
    images: Mapping[str, tuple[str, str]] | None = None,
) -> DeployResult:
    """Roll out the files with each service's update policy; roll back on failure.
    `images` as for `up`."""
    project.stack()  # bad input fails before the lock is taken
    with project_lock(project.paths()):
        engine = project.engine()
        recovered = [result(o) for o in engine.recover()]
        release = _build(engine, project, services, images)
        o = engine.apply(release, "deploy", "conveyor deploy")
    _agent_follows(project, engine)
    _follow(project, engine)
    return DeployResult(outcome=result(o), recovered=recovered)


def _agent_follows(project: Project, engine: Engine) -> None:
    """An agent started before a host left the fleet still counts it as an app host (it
    reads conveyor.yaml when it starts): started again once the project is off that host."""
    if engine.retired:
        restart_agent(project)


def _follow(project: Project, engine: Engine) -> None:
    """Metrics targets (and the HAProxy relabelling) follow the new replicas and services now,
    not at the agent's next tick; nothing is started for a project whose metrics are off."""
    if metrics_app.enabled(engine.paths, project.environ):
        metrics_app.ensure_metrics(project, engine, agent=agent_pid(engine.paths) is not None)


def rollback(project: Project, service: str | None, to: int | None = None) -> DeployResult:
    """Back to the previous release, or to release `to` (or one service back to its image
    and spec there)."""
    with project_lock(project.paths()):
        engine = project.engine()
        outcomes = engine.recover()
        # A rollback a crash interrupted, now finished, is the rollback asked for: another
        # one would go forward again.
        done = [o for o in outcomes if o.finished_rollback]
        o = done[-1] if done else engine.rollback(service, to)
    _agent_follows(project, engine)
    _follow(project, engine)
    return DeployResult(outcome=result(o), recovered=[result(r) for r in outcomes])


def down(project: Project, volumes: bool = False) -> DownResult:
    """Stop the reconciler, drain and stop every replica and HAProxy; history stays, and the
    named volumes too unless `volumes` (then their data is deleted, as `docker compose down
    --volumes` does)."""
    from conveyor.deploy.fleet_runtime import FleetRuntime

    paths = project.paths()
    stopped = stop_agent(paths)
    with project_lock(paths):
        engine = project.engine()
        o = engine.down()
        removed = engine.runtime.remove_volumes(paths.project) if volumes else []
        if isinstance(engine.runtime, FleetRuntime):
            engine.runtime.close()  # the SSH tunnels to the hosts' engines
    return DownResult(
        project=paths.project,
        agent_stopped=stopped,
        seconds=round(o.duration, 3),
        volumes_removed=removed,
        checks_stopped=stop_checks(paths),
        components_stopped=metrics_app.stop_metrics(paths),
    )


def status(project: Project) -> StatusView:
    engine = project.engine()
    observed = engine.observe(left=True)
    store = engine.store
    cur = store.current_release()
    fports = store.ports.frontend_ports()
    # On a fleet each app host's HAProxy has its own stats page, on that host's 127.0.0.1.
    stats = store.ports.stats_port() if _fleet_router(engine) is None else None
    names = list(cur.order()) if cur else []
    names += sorted({r.service for r in observed.replicas} - set(names))
    desired = engine.desired_replicas(cur, observed) if cur else {}
    services: list[ServiceView] = []
    now = time.time()
    for name in names:
        sr = cur.services.get(name) if cur else None
        fport = fports.get(name) if sr and sr.service.routed else None
        reps = sorted(observed.of(name), key=lambda r: r.replica)
        services.append(
            ServiceView(
                name=name,
                mode=sr.service.placement.mode if sr and sr.service.placement else "replicated",
                desired_replicas=desired.get(name, 0),
                running_replicas=sum(1 for r in reps if r.running),
                image=sr.image_ref if sr else None,
                spec_hash=sr.spec_hash if sr else None,
                url=_frontend_url(engine, sr.service, fport) if sr and fport else None,
                replicas=[
                    ReplicaView(
                        name=r.replica,
                        release=r.release,
                        port=r.endpoint.port,
                        address=r.endpoint.host,
                        running=r.running,
                        exit_code=r.exit_code,
                        health=r.health,
                        router=r.router,
                        current=bool(sr and r.spec_hash == sr.spec_hash),
                        container=r.container_id[:12],
                        uptime=round(now - r.started_at, 1) if r.running and r.started_at else None,
                        host=r.host,
                    )
                    for r in reps
                ],
            )
        )
    pid = agent_pid(engine.paths)
    return StatusView(
        project=engine.project,
        release=cur.number if cur else None,
        commit=cur.commit if cur else None,
        router=RouterView(
            running=engine.router.running(),
            stats_url=f"http://127.0.0.1:{stats}/stats" if stats is not None else None,
        ),
        agent=AgentView(running=pid is not None, pid=pid),
        services=services,
        checks=checks_health(engine.paths),
        components=[
            *metrics_app.components(engine.paths),
            *filter(None, [logs_app.component(engine.paths.state_dir)]),
        ],
        notes=engine.retirement.notes() if engine.retirement is not None else [],
    )


def rollout_view(r: RolloutRow) -> RolloutView:
    return RolloutView(
        **r.model_dump(include=set(RolloutView.model_fields) - {"duration"}),
        duration=None if r.duration is None else round(r.duration, 3),
    )


def current_release(project: Project) -> Release | None:
    """The release the project serves, read from its state database alone (no engine)."""
    store = Store.open(project.paths().state_dir)
    try:
        return store.current_release()
    finally:
        store.close()


def history(project: Project, limit: int) -> HistoryView:
    store = Store.open(project.paths().state_dir)
    return HistoryView(
        rollouts=[rollout_view(r) for r in store.rollouts.latest(limit=limit)],
        releases=[
            ReleaseView(
                number=rel.number,
                created_at=rel.created_at,
                commit=rel.commit,
                services={
                    n: ReleaseImage(image=sr.image_ref, spec_hash=sr.spec_hash)
                    for n, sr in rel.services.items()
                },
            )
            for rel in store.releases.latest(limit=limit)
        ],
    )


def logs(
    project: Project, service: str, follow: bool, tail: int | None
) -> Iterator[tuple[str, str]]:
    """(replica, line) of the service's replicas, interleaved as they arrive; on a fleet
    every app host's, the replica named `replica@host` (deploy.fleet_runtime)."""
    from conveyor.deploy.fleet_engines import FleetEngines
    from conveyor.deploy.fleet_health import FleetHealth
    from conveyor.deploy.fleet_runtime import FleetRuntime
    from conveyor.runtime.docker_engine import DockerEngine

    stack = project.stack()
    if service not in stack.services:
        raise UnknownService(f"no such service: {service} (services: {', '.join(stack.services)})")
    fleet = project.fleet()
    if not fleet.with_role("app"):
        return DockerEngine().logs(stack.project, service, follow, tail)
    engines = FleetEngines(fleet, project.paths().run_dir / "fleet")
    runtime = FleetRuntime(engines, FleetHealth(engines), DockerEngine())
    return runtime.logs(stack.project, service, follow, tail)


def reconciler(project: Project) -> Reconciler:
    """The project's reconciler, for the long-running process to host (`conveyor agent`)."""
    return Reconciler(project.engine(actor="agent"))


def _frontend_url(engine: Engine, service: Service, port: int) -> str | None:
    host = _frontend_host(engine, service)
    return f"{_scheme(service)}://{host}:{port}" if host is not None else None


def _scheme(service: Service) -> str:
    """How a service's stable frontend speaks: HTTP, unless its main port is served as TCP
    (project networks: a database, a broker)."""
    main = service.app_port()
    return "tcp" if main is not None and main not in service.http_ports() else "http"


def _build(
    engine: Engine,
    project: Project,
    services: list[str],
    images: Mapping[str, tuple[str, str]] | None = None,
) -> Release:
    """The release of the files (of `services`, the rest as they run), with its provenance."""
    o = project.origin
    return engine.build_release(
        project.stack(), services, commit=o.commit, pipeline=o.pipeline, job=o.job, images=images
    )
