"""Metrics use cases: the project's Prometheus, Alertmanager and node exporter configured from its
stack and supervised (`up`, the agent's loop, `down`), Conveyor's own metrics served by the agent,
`conveyor metrics` answered from Prometheus's API, and the status lines of the components.

What runs and which names and labels it has is docs/metrics.md. The files come from the pure
renderers (`render.prometheus`, `render.alertmanager_routes`), the daemons from
`observe.metrics.supervisor`; this module decides what goes in them for one project.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.app.alerts import agent_hook, alert_targets, refresh_rules, slo_targets

# Re-exported (`as`): callers ask app.metrics whether metrics run.
from conveyor.app.metrics_switch import OFF_SETTING as OFF_SETTING  # noqa: PLC0414
from conveyor.app.metrics_switch import enabled as enabled  # noqa: PLC0414
from conveyor.app.metrics_switch import layout as layout  # noqa: PLC0414
from conveyor.app.metrics_switch import set_enabled as set_enabled  # noqa: PLC0414
from conveyor.app.metrics_switch import turned_off
from conveyor.app.metrics_views import (
    EdgeFigures,
    GrafanaFiles,
    Latency,
    LatencySource,
    MetricsReport,
    MetricsUp,
    ServiceFigures,
)
from conveyor.app.project import Project
from conveyor.app.views import ComponentView
from conveyor.deploy.engine import Engine
from conveyor.deploy.ports import pick_port
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import (
    ConveyorError,
    EngineUnreachable,
    MetricsError,
    SettingError,
    UnknownService,
)
from conveyor.model.events import Event, EventKind, Level
from conveyor.model.release import Observed, Release
from conveyor.observe.metrics import promql
from conveyor.observe.metrics.access_log import EntryLabels, LatencyFeed
from conveyor.observe.metrics.own import ConveyorMetrics, MetricsEndpoint, ReplicaCount
from conveyor.observe.metrics.query import PrometheusClient, Sample
from conveyor.observe.metrics.supervisor import (
    COMPONENTS,
    MetricsLayout,
    MetricsPorts,
    MetricsStack,
)
from conveyor.plan.routes import router_config
from conveyor.render import alertmanager_routes as routes_render
from conveyor.render import grafana as grafana_render
from conveyor.render import haproxy as haproxy_render
from conveyor.render import prometheus as prom_render
from conveyor.render.alertmanager_routes import ConveyorHook
from conveyor.store.db import Store

# Ports of the metrics stack, apart from frontends (18100-18999) and replicas (20000-29999).
METRICS_RANGE = (19100, 19999)
PORT_SETTINGS = {
    "prometheus": "CONVEYOR_PROMETHEUS_PORT",
    "alertmanager": "CONVEYOR_ALERTMANAGER_PORT",
    "node_exporter": "CONVEYOR_NODE_EXPORTER_PORT",
    "conveyor": "CONVEYOR_METRICS_PORT",
}
WEBHOOKS_SETTING = "CONVEYOR_ALERT_WEBHOOKS"  # URLs (comma-separated) for Alertmanager's receiver
# The agent's metrics loop: targets follow replicas within this many seconds.
METRICS_INTERVAL = 5.0


# ---- ports --------------------------------------------------------------------------------------


def ports(lay: MetricsLayout, environ: Mapping[str, str]) -> MetricsPorts:
    """The stack's ports: the settings', else those kept in ports.json, else free ones (kept)."""
    kept: dict[str, int] = {}
    if lay.ports_file.exists():
        try:
            kept = vars(MetricsPorts.from_json(lay.ports_file.read_text())).copy()
        except (OSError, ValueError, KeyError, TypeError):
            kept = {}  # unreadable: choose again
    chosen: dict[str, int] = {}
    for key, setting in PORT_SETTINGS.items():
        given = environ.get(setting)
        if given:
            if not given.isdigit() or not 0 < int(given) < 65536:
                raise SettingError(f"{setting}={given!r} is not a TCP port")
            chosen[key] = int(given)
    taken = set(chosen.values()) | set(kept.values())
    for key in PORT_SETTINGS:
        if key in chosen:
            continue
        if key in kept:
            chosen[key] = kept[key]
            continue
        port = pick_port(taken, METRICS_RANGE)
        taken.add(port)
        chosen[key] = port
    result = MetricsPorts(**chosen)
    if chosen != kept:
        lay.root.mkdir(parents=True, exist_ok=True)
        lay.ports_file.write_text(result.to_json())
    return result


def _kept_ports(lay: MetricsLayout) -> MetricsPorts | None:
    try:
        return MetricsPorts.from_json(lay.ports_file.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- what the files say (pure) ------------------------------------------------------------------


def _routed(release: Release | None) -> list[str]:
    if release is None:
        return []
    return [n for n in release.order() if release.services[n].service.routed]


@dataclass(frozen=True)
class ProjectFacts:
    """What the metrics files need to know of one project (environment) on this host."""

    project: str
    environment: str
    release: Release | None
    frontend_ports: Mapping[str, int]
    stats_port: int | None
    observed: Observed
    # Desired replicas when not the file's count (a global service on a fleet: its hosts).
    desired: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, engine: Engine, observed: Observed | None = None) -> ProjectFacts:
        store = engine.store
        release = store.current_release()
        observed = observed if observed is not None else engine.observe()
        return cls(
            project=engine.project,
            environment=engine.timeline.subject.environment or engine.project,
            release=release,
            frontend_ports=store.ports.frontend_ports(),
            stats_port=store.ports.stats_port(),
            observed=observed,
            desired=engine.desired_replicas(release, observed) if release else {},
        )


def proxies(facts: ProjectFacts) -> tuple[prom_render.ProxyLabels, ...]:
    """The HAProxy proxies of a project's serving release, with their labels."""
    if facts.release is None:
        return ()
    routed = _routed(facts.release)
    shape = router_config(facts.release, routed, facts.frontend_ports, {}, facts.stats_port)
    return prom_render.proxy_labels(facts.project, shape)


def config_files(
    projects: Iterable[ProjectFacts],
    ports_: MetricsPorts,
    lay: MetricsLayout,
    webhooks: tuple[str, ...] = (),
    hook: ConveyorHook | None = None,
) -> tuple[str, str]:
    """(prometheus.yml, alertmanager.yml) for the projects one stack watches. `hook`: where
    Alertmanager delivers to Conveyor (the agent's listener or the server's route), with the
    routes, receivers and inhibitions of docs/alerts.md."""
    prom = prom_render.PrometheusConfig(
        listen=f"127.0.0.1:{ports_.prometheus}",
        targets_dir=str(lay.targets_dir),
        rules_dir=str(lay.rules_dir),
        alertmanager=f"127.0.0.1:{ports_.alertmanager}",
        proxies=tuple(p for facts in projects for p in proxies(facts)),
    )
    return prom_render.render(prom), routes_render.render(hook, webhooks)


def replica_targets(release: Release | None, observed: Observed) -> list[prom_render.ReplicaTarget]:
    """The running replicas of services that declare `x-conveyor.metrics`."""
    if release is None:
        return []
    out = []
    for r in observed.replicas:
        sr = release.services.get(r.service)
        endpoint = sr.service.metrics if sr is not None else None
        if endpoint is None or not r.running:
            continue
        port = endpoint.port or r.endpoint.port
        host = f"[{r.endpoint.host}]" if ":" in r.endpoint.host else r.endpoint.host
        out.append(prom_render.ReplicaTarget(r.service, r.replica, f"{host}:{port}", endpoint.path))
    return out


def target_files(facts: ProjectFacts) -> dict[str, str]:
    """Targets file name -> its text, for one project's HAProxy and replicas."""
    r = prom_render
    p, env = facts.project, facts.environment
    return {
        r.targets_file("haproxy", p): r.render_targets(r.haproxy_targets(p, env, facts.stats_port)),
        r.targets_file("replicas", p): r.render_targets(
            r.replica_targets(p, env, replica_targets(facts.release, facts.observed))
        ),
    }


def host_target_files(ports_: MetricsPorts, owner: str, component: str | None) -> dict[str, str]:
    """The host's node exporter, and Conveyor's own endpoint (`component` agent or server; None
    when no long-running process serves it) as `conveyor-<owner>.json`."""
    r = prom_render
    port = ports_.conveyor if component is not None else None
    return {
        r.targets_file("node"): r.render_targets(r.node_targets(ports_.node_exporter)),
        r.targets_file("conveyor", owner): r.render_targets(
            r.conveyor_targets(port, component or "agent")
        ),
    }


def replica_counts(facts: ProjectFacts) -> list[ReplicaCount]:
    if facts.release is None:
        return []
    out = []
    for name in facts.release.order():
        sr = facts.release.services[name]
        running = sum(1 for r in facts.observed.of(name) if r.running)
        out.append(
            ReplicaCount(
                facts.project,
                facts.environment,
                name,
                facts.desired.get(name, sr.service.replicas),
                running,
            )
        )
    return out


def _webhooks(environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(u.strip() for u in environ.get(WEBHOOKS_SETTING, "").split(",") if u.strip())


# ---- supervision --------------------------------------------------------------------------------


def _components(stack: MetricsStack) -> list[ComponentView]:
    return [
        ComponentView(name=h.name, url=h.url, running=h.running, healthy=h.healthy, pid=h.pid)
        for h in stack.health()
    ]


Report = Callable[[EventKind, str, Level, dict[str, Any]], None]


def supervise(
    stack: MetricsStack,
    projects: list[ProjectFacts],
    host_files: Mapping[str, str],
    webhooks: tuple[str, ...],
    report: Report,
    stale: Iterable[str] = (),
    hook: ConveyorHook | None = None,
) -> MetricsUp:
    """One pass over a metrics stack: files rendered for `projects`, checked and loaded, targets
    written (and the `stale` targets files of projects gone removed), daemons started. A
    component whose PID file names a dead process is started again and reported as
    `daemon.restarted`; one that cannot start is reported (`daemon.failed`) and returned in
    `error`, not raised: the apps run whatever their monitoring does."""
    died = [
        c
        for c in COMPONENTS
        if stack.daemon(c).recorded_pid() is not None and not stack.daemon(c).running()
    ]
    try:
        prom, am = config_files(projects, stack.ports, stack.layout, webhooks, hook)
        reloaded = stack.configure(prom, am)
        files = dict(host_files)
        for facts in projects:
            files.update(target_files(facts))
        for name, text in files.items():
            stack.write_targets(name, text)
        for name in stale:
            if name not in files:
                stack.remove_targets(name)
        started = stack.ensure()
    except MetricsError as e:
        report("daemon.failed", str(e), "error", {"component": "metrics"})
        return MetricsUp(enabled=True, components=_components(stack), error=str(e))
    restarted = [c for c in started if c in died]
    for c in restarted:
        report(
            "daemon.restarted",
            f"{c} was not running: started it again",
            "warning",
            {"component": c, "url": stack.url(c)},
        )
    return MetricsUp(
        enabled=True, components=_components(stack), reloaded=reloaded, restarted=restarted
    )


def ensure_metrics(
    project: Project,
    engine: Engine,
    *,
    agent: bool,
    observed: Observed | None = None,
) -> MetricsUp:
    """Configure and start the project's own metrics stack (unless turned off), targets from
    what runs now (see `supervise`). `agent`: the project's agent serves Conveyor's metrics."""
    paths = engine.paths
    if not enabled(paths, project.environ):
        return MetricsUp(enabled=False)
    lay = layout(paths)
    ports_ = ports(lay, project.environ)

    def report(kind: EventKind, message: str, level: Level, data: dict[str, Any]) -> None:
        engine.timeline.emit(kind, message, level=level, data=data)

    return supervise(
        MetricsStack(lay, ports_),
        [ProjectFacts.of(engine, observed)],
        host_target_files(ports_, engine.project, "agent" if agent else None),
        _webhooks(project.environ),
        report,
        hook=agent_hook(paths, project.environ),
    )


def stop_metrics(paths: ProjectPaths) -> list[str]:
    """Stop the project's metrics daemons (by PID; their data stays)."""
    lay = layout(paths)
    kept = _kept_ports(lay)
    if kept is None:
        return []
    return MetricsStack(lay, kept).stop()


def components(paths: ProjectPaths) -> list[ComponentView]:
    """The project's metrics components with their URL and health (none if never started)."""
    lay = layout(paths)
    kept = _kept_ports(lay)
    if kept is None:
        return []
    return _components(MetricsStack(lay, kept))


@dataclass
class MetricsController:
    """The agent's metrics loop: targets follow the replicas, a dead daemon is started again,
    replica counts are kept for Conveyor's own metrics."""

    project: Project
    engine: Engine
    own: OwnMetrics | None = None
    name: str = "metrics"
    counts: list[ReplicaCount] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.own is not None:
            self.own.metrics.replica_source(lambda: list(self.counts))

    def tick(self) -> MetricsUp | None:
        try:
            facts = ProjectFacts.of(self.engine)
        except EngineUnreachable:
            return None  # the reconciler reports the engine away; targets wait for it
        self.counts = replica_counts(facts)
        if self.own is not None:
            self.own.read_latency(self.engine, facts)
        return ensure_metrics(self.project, self.engine, agent=True, observed=facts.observed)


def entries(facts: ProjectFacts) -> dict[str, EntryLabels]:
    """Frontend name -> what its requests count as (service, edge)."""
    return {
        p.proxy: EntryLabels(facts.project, facts.environment, p.service, p.edge)
        for p in proxies(facts)
        if p.edge is not None
    }


@dataclass
class OwnMetrics:
    """Conveyor's own metrics in a long-running process, where they are served, and the
    HAProxy access logs read into its request-latency histogram."""

    metrics: ConveyorMetrics
    endpoint: MetricsEndpoint | None
    error: str | None = None
    feed: LatencyFeed | None = None

    def read_latency(self, engine: Engine, facts: ProjectFacts) -> Path | None:
        """Read the project's HAProxy access log (its frontends as `facts` has them); the
        socket read, or None when it cannot be bound (said as the error)."""
        if self.feed is None:
            m = self.metrics
            self.feed = LatencyFeed(
                lambda e, seconds: m.request(e.project, e.environment, e.service, e.edge, seconds)
            )
        path = engine.paths.router_dir.absolute() / haproxy_render.ACCESS_LOG_SOCKET
        known = entries(facts)
        for e in known.values():
            # Each series exists (at 0) before its first request: a series born with its
            # first requests in it has no rate over them.
            self.metrics.requests.labels(e.project, e.environment, e.service, e.edge)
        try:
            self.feed.watch(path, known)
        except OSError as e:
            self.error = f"cannot read HAProxy's access log at {path}: {e}"
            return None
        return path

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()
        if self.endpoint is not None:
            self.endpoint.close()


def serve_own_metrics(project: Project) -> OwnMetrics | None:
    """Count the project's events and serve them on its `conveyor` port (None when metrics are
    off). A port that cannot be bound is reported in `error`; the agent runs on without it."""
    paths = project.paths()
    if not enabled(paths, project.environ):
        return None
    metrics = ConveyorMetrics()
    project.subscribe(metrics.observe_event)
    port = ports(layout(paths), project.environ).conveyor
    try:
        endpoint: MetricsEndpoint | None = metrics.serve(port)
        error = None
    except OSError as e:
        endpoint, error = None, f"cannot serve Conveyor's metrics on 127.0.0.1:{port}: {e}"
    return OwnMetrics(metrics, endpoint, error)


# ---- conveyor metrics ---------------------------------------------------------------------------


def _by_service(samples: Iterable[Sample]) -> dict[str, float | None]:
    return {s.labels.get("service", ""): s.value for s in samples}


def metrics_report(project: Project, service: str | None, window: str) -> MetricsReport:
    """Per service request rate, error ratio and latency over `window`, from Prometheus."""
    promql.check_window(window)
    paths = project.paths()
    kept = _kept_ports(layout(paths))
    if kept is None:
        raise MetricsError(
            f"no metrics for project {paths.project!r}: `conveyor up` starts Prometheus for it "
            "(unless --no-metrics)"
        )
    store = Store.open(paths.state_dir)
    try:
        release = store.current_release()
    finally:
        store.close()
    names = _routed(release)
    if service is not None:
        if release is None or service not in release.services:
            known = ", ".join(release.services) if release else "none"
            raise UnknownService(f"no such service: {service} (services: {known})")
        names = [service]
    url = f"http://127.0.0.1:{kept.prometheus}"
    client = PrometheusClient(url)
    p = paths.project
    rate = _by_service(client.query(promql.request_rate(p, window, service)))
    conns = _by_service(client.query(promql.connection_rate(p, window, service)))
    errors = _by_service(client.query(promql.error_ratio(p, window, service)))
    avg = _by_service(client.query(promql.average_latency(p, window, service)))
    # HAProxy's access log first (every request, no app change), else the replicas' own.
    sources: list[tuple[LatencySource, str]] = [
        ("haproxy-log", promql.ACCESS_LOG_HISTOGRAM),
        ("replicas", promql.REPLICA_HISTOGRAM),
    ]
    quantiles = {
        source: {
            q: _by_service(client.query(promql.quantile_latency(q, p, window, service, histogram)))
            for q in promql.QUANTILES
        }
        for source, histogram in sources
    }
    edges: dict[str, dict[str, EdgeFigures]] = {}
    edge_rates = client.query(promql.edge_request_rate(p, window, service))
    edge_errors = {
        (s.labels.get("service", ""), s.labels.get("edge", "")): s.value
        for s in client.query(promql.edge_error_ratio(p, window, service))
    }
    for s in edge_rates:
        svc, edge = s.labels.get("service", ""), s.labels.get("edge", "")
        if edge:
            edges.setdefault(svc, {})[edge] = EdgeFigures(
                edge=edge, requests_per_second=s.value, error_ratio=edge_errors.get((svc, edge))
            )
    services = []
    for name in names:
        latency = Latency(source="none")
        if avg.get(name) is not None:
            latency = Latency(source="haproxy-average", avg=avg.get(name))
        for source, _ in sources:
            ps = {q: quantiles[source][q].get(name) for q in promql.QUANTILES}
            if any(v is not None for v in ps.values()):
                latency = Latency(
                    source=source, p50=ps[0.5], p95=ps[0.95], p99=ps[0.99], avg=avg.get(name)
                )
                break
        services.append(
            ServiceFigures(
                service=name,
                requests_per_second=rate.get(name),
                connections_per_second=conns.get(name),
                error_ratio=errors.get(name),
                latency=latency,
                edges=sorted(edges.get(name, {}).values(), key=lambda e: e.edge),
            )
        )
    return MetricsReport(project=p, window=window, prometheus=url, services=services)


def write_grafana(project: Project, directory: Path) -> GrafanaFiles:
    """The project's Grafana dashboards and provisioning files, written into `directory`."""
    paths = project.paths()
    url = (
        prometheus_url(paths)
        or f"http://127.0.0.1:{ports(layout(paths), project.environ).prometheus}"
    )
    root = directory.absolute()
    written = []
    for f in grafana_render.files(paths.project, url, str(root)):
        target = root / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.text)
        written.append(f.path)
    provisioning = root / "provisioning"
    return GrafanaFiles(
        directory=str(root),
        dashboards=[w for w in written if w.startswith("dashboards/")],
        provisioning=str(provisioning),
    )


def prometheus_url(paths: ProjectPaths) -> str | None:
    kept = _kept_ports(layout(paths))
    return None if kept is None else f"http://127.0.0.1:{kept.prometheus}"


# ---- the server -------------------------------------------------------------------------------

# This process's own metrics once one is served (the agent's or the server's), for code far
# from the loop to count into (webhook deliveries); None in a command.
_PROCESS: dict[str, ConveyorMetrics] = {}


def count_webhook(source: str, result: str) -> None:
    """Count a webhook delivery (`accepted`, `duplicate`, `rejected`) when this process serves
    Conveyor's metrics."""
    own = _PROCESS.get("own")
    if own is not None:
        own.webhook(source, result)


class ServerMetrics:
    """The server's one metrics stack under its data directory, watching every environment it
    serves on this host (their own stacks are off: the controller sets CONVEYOR_METRICS=0 for
    them), and Conveyor's own metrics served by the server process."""

    def __init__(
        self, data_dir: Path, environ: Mapping[str, str], report: Report | None = None
    ) -> None:
        self.layout = MetricsLayout(data_dir / "metrics")
        self.environ = environ
        self.enabled = not turned_off(environ)
        self.report: Report = report or (lambda *_args: None)
        self.own: OwnMetrics | None = None
        self._stack: MetricsStack | None = None
        self._next = 0.0
        self._counts: list[ReplicaCount] = []
        self.hook: ConveyorHook | None = None  # the server's /hooks/alertmanager (run.py)

    def start(self) -> OwnMetrics | None:
        """Serve Conveyor's own metrics on the stack's `conveyor` port (events reach them
        through `observe_event`)."""
        if not self.enabled:
            return None
        ports_ = ports(self.layout, self.environ)
        self._stack = MetricsStack(self.layout, ports_)
        metrics = ConveyorMetrics()
        try:
            endpoint: MetricsEndpoint | None = metrics.serve(ports_.conveyor)
            error = None
        except OSError as e:
            endpoint = None
            error = f"cannot serve Conveyor's metrics on 127.0.0.1:{ports_.conveyor}: {e}"
        metrics.replica_source(lambda: list(self._counts))
        self.own = OwnMetrics(metrics, endpoint, error)
        _PROCESS["own"] = metrics
        return self.own

    def observe_event(self, event: Event) -> None:
        if self.own is not None:
            self.own.metrics.observe_event(event)

    def backup_schedule(
        self,
        project: str,
        environment: str,
        service: str,
        interval: float,
        since: float,
        last_success: float | None,
    ) -> None:
        """What a backup schedule expects of a service (app.backup_schedule tells)."""
        if self.own is not None:
            self.own.metrics.backup_schedule(
                project, environment, service, interval, since, last_success
            )

    def tick(self, engines: list[Engine], now: float) -> MetricsUp | None:
        """Every METRICS_INTERVAL at most: the stack made to watch `engines`' projects."""
        if self._stack is None or now < self._next:
            return None
        self._next = now + METRICS_INTERVAL
        facts = []
        for engine in engines:
            try:
                facts.append(ProjectFacts.of(engine))
            except EngineUnreachable:
                return None  # nothing to say about replicas while the engine is away
        self._counts = [c for f in facts for c in replica_counts(f)]
        if self.own is not None:
            read = {self.own.read_latency(e, f) for e, f in zip(engines, facts, strict=True)}
            if self.own.feed is not None:
                self.own.feed.forget({p for p in read if p is not None})
        stack = self._stack
        component = "server" if self.own is not None and self.own.endpoint else None
        up = supervise(
            stack,
            facts,
            host_target_files(stack.ports, "server", component),
            _webhooks(self.environ),
            self.report,
            stale=stack.targets(),
            hook=self.hook,
        )
        # The alert rules of every environment, their SLOs and thresholds from the serving
        # releases.
        targets = [t for f in facts for t in slo_targets(f.project, f.environment, f.release)]
        own = [t for f in facts for t in alert_targets(f.project, f.environment, f.release)]
        try:
            refresh_rules(stack.layout.rules_dir, targets, stack.url("prometheus"), own=own)
        except ConveyorError as e:
            self.report("daemon.failed", f"alert rules: {e}", "error", {"component": "rules"})
        return up

    def components(self) -> list[ComponentView]:
        return _components(self._stack) if self._stack is not None else []

    def stop(self) -> list[str]:
        """Close Conveyor's own endpoint and stop the daemons (only the server needed them;
        their data stays for its next start). Returns the components stopped."""
        if self.own is not None:
            self.own.close()
            _PROCESS.pop("own", None)
        return self._stack.stop() if self._stack is not None else []
