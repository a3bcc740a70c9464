"""Alerts use cases: the rule files of a project (or of every environment a server runs) from
its serving release's SLOs, the receiver that turns Alertmanager's webhook deliveries into
`alert.firing` / `alert.resolved` events (which the notification channels take), where that
receiver is for Alertmanager (`ConveyorHook`: URL and bearer token file), and `conveyor alerts`.
docs/alerts.md is the reader's side.

Where the receiver runs: under `conveyor server`, as `POST /hooks/alertmanager` of its API
(server/api.py); for a project brought up with `conveyor up` alone, in the project's agent, as
a listener on 127.0.0.1 (server/alert_listener.py) whose port is kept in
`<state>/alerts/receiver.json`. Either checks `Authorization: Bearer <token>` against a token
file Alertmanager is given too (`credentials_file`): `<state>/alerts/token` (the server's:
`<data>/alerts/token`), made on first use with a random token, or the file
CONVEYOR_ALERT_TOKEN_FILE names.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from conveyor.app.metrics_switch import enabled as metrics_enabled
from conveyor.app.project import Project
from conveyor.deploy.engine import Engine
from conveyor.deploy.ports import pick_port
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import AlertsError, ConveyorError, HookRejected, SettingError
from conveyor.model.alerts import Alert, AlertsView, AlertView
from conveyor.model.events import Event, EventKind, Level
from conveyor.model.release import Release
from conveyor.observe.metrics.alerts import AlertTracker, Change, PayloadError, parse_delivery
from conveyor.observe.metrics.alerts_api import AlertmanagerAPI
from conveyor.observe.metrics.rules_files import RulesSync, reload_prometheus, sync_rule_files
from conveyor.render import prometheus_rules

# Re-exported (`as`): the entry points serve it and may not import render.
from conveyor.render.alertmanager_routes import HOOK_PATH as HOOK_PATH  # noqa: PLC0414
from conveyor.render.alertmanager_routes import ConveyorHook
from conveyor.store.database import DB_NAME, private_dir
from conveyor.store.db import Store
from conveyor.store.events import EventLog
from conveyor.store.owner_file import read_owner
from conveyor.store.server_db import ServerDatabase

# A file holding the bearer token (else one is made); a variable's name, not a secret.
TOKEN_SETTING = "CONVEYOR_ALERT_TOKEN_FILE"  # noqa: S105
PORT_SETTING = "CONVEYOR_ALERT_RECEIVER_PORT"  # the agent's listener's port (else picked, kept)
ALERTMANAGER_SETTING = "CONVEYOR_ALERTMANAGER_URL"  # where `conveyor alerts` asks
AM_PORT_SETTING = "CONVEYOR_ALERTMANAGER_PORT"  # the metrics stack's setting (docs/metrics.md)
RECEIVER_RANGE = (19100, 19999)  # the metrics stack's range (docs/metrics.md)
MAX_BODY = 1024 * 1024  # an Alertmanager group of a few hundred alerts is far below this
RESOLVED_WINDOW = 3600.0  # seconds `conveyor alerts` lists resolved alerts for, by default
KINDS: tuple[EventKind, ...] = ("alert.firing", "alert.resolved")
RULES_INTERVAL = 5.0  # seconds between the agent's looks at the serving release's SLOs


def alerts_dir(state_dir: Path) -> Path:
    """`<state>/alerts` of a project (or `<data>/alerts` of a server)."""
    return state_dir / "alerts"


# ---- the token ----------------------------------------------------------------------------------


def token_file(state_dir: Path, environ: Mapping[str, str]) -> Path:
    """The file holding the bearer token Alertmanager sends and the receiver expects: the one
    CONVEYOR_ALERT_TOKEN_FILE names (it must exist), else `<state>/alerts/token`, made with
    a random token (mode 0600) the first time."""
    given = environ.get(TOKEN_SETTING, "").strip()
    if given:
        path = Path(given)
        if not path.is_absolute():
            raise SettingError(f"{TOKEN_SETTING}={given!r}: give an absolute path")
        if not path.is_file():
            raise SettingError(f"{TOKEN_SETTING}={given!r}: no such file")
        return path
    path = private_dir(alerts_dir(state_dir)) / "token"
    if not path.exists():
        # Written whole before it is visible: a receiver never reads half a token.
        partial = path.with_name(".token.partial")
        partial.write_text(secrets.token_urlsafe(32) + "\n")
        partial.chmod(0o600)
        partial.replace(path)
    return path


def read_token(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise SettingError(f"the alert receiver's token file {path} is empty")
    return token


# ---- the receiver -------------------------------------------------------------------------------


class Emit(Protocol):
    """What records an event: `Timeline.emit`, or the GitOps controller's `notice`."""

    def __call__(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
        *,
        environment: str | None = None,
        service: str | None = None,
    ) -> object: ...


@dataclass(frozen=True)
class Received:
    alerts: int  # in the delivery
    told: list[str] = field(default_factory=list)  # "<kind> <alertname>" per event emitted


# An alert's severity label (render.prometheus_rules) -> the level of its firing event.
_LEVELS: dict[str, Level] = {"page": "error", "ticket": "warning"}


def event_of(change: Change) -> tuple[EventKind, str, Level, dict[str, Any]]:
    """The event one change is: kind, message (the alert's summary), level, data."""
    a = change.alert
    level: Level = "info"
    if change.kind == "alert.firing":
        level = _LEVELS.get(a.severity or "", "warning")
    data: dict[str, Any] = {
        "alertname": a.name,
        "severity": a.severity,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "fingerprint": a.fingerprint,
    }
    if a.label("project"):
        data["project"] = a.labels["project"]
    if a.generator_url:
        data["url"] = a.generator_url
    return change.kind, a.summary, level, data


class AlertReceiver:
    """Alertmanager's webhook deliveries, checked and told as events: each alert's start and
    end once (`observe.metrics.alerts.AlertTracker`), through `emit`. Thread-safe."""

    def __init__(self, token: Path | str, emit: Emit) -> None:
        """`token`: the token, or the file holding it (read at each delivery, so a new token
        needs no restart)."""
        self._token = token
        self._emit = emit
        self._tracker = AlertTracker()
        self._lock = threading.Lock()

    def _expected(self) -> str:
        return read_token(self._token) if isinstance(self._token, Path) else self._token

    def receive(self, authorization: str | None, body: bytes) -> Received:
        """One delivery. Raises HookRejected: 401 without the right bearer token, 413 for a
        body over MAX_BODY, 400 for what is not Alertmanager's webhook JSON."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._expected().encode()
        ):
            raise HookRejected(401, "Authorization: Bearer <the alert receiver's token> needed")
        if len(body) > MAX_BODY:
            raise HookRejected(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            delivery = parse_delivery(body)
        except PayloadError as e:
            raise HookRejected(400, f"not an Alertmanager webhook delivery: {e}") from e
        told: list[str] = []
        with self._lock:  # one delivery at a time: the tracker's view and the events agree
            for change in self._tracker.changes(delivery.alerts):
                kind, message, level, data = event_of(change)
                a = change.alert
                self._emit(
                    kind,
                    message,
                    level,
                    data,
                    environment=a.label("environment"),
                    service=a.label("service"),
                )
                told.append(f"{kind} {a.name}")
        return Received(alerts=len(delivery.alerts), told=told)


# ---- where the agent's receiver listens ---------------------------------------------------------


def receiver_port(state_dir: Path, environ: Mapping[str, str]) -> int:
    """The port of the agent's receiver on 127.0.0.1: CONVEYOR_ALERT_RECEIVER_PORT, else the
    one kept in `<state>/alerts/receiver.json`, else a free one (kept there)."""
    given = environ.get(PORT_SETTING, "").strip()
    if given:
        if not given.isdigit() or not 0 < int(given) < 65536:
            raise SettingError(f"{PORT_SETTING}={given!r} is not a TCP port")
        return int(given)
    kept = alerts_dir(state_dir) / "receiver.json"
    try:
        port = int(json.loads(kept.read_text())["port"])
        if 0 < port < 65536:
            return port
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: choose again
    port = pick_port((), RECEIVER_RANGE)
    private_dir(kept.parent)
    kept.write_text(json.dumps({"port": port}) + "\n")
    return port


def agent_hook(paths: ProjectPaths, environ: Mapping[str, str]) -> ConveyorHook:
    """Where the project's Alertmanager delivers to its agent (render.alertmanager_routes)."""
    port = receiver_port(paths.state_dir, environ)
    return ConveyorHook(
        url=f"http://127.0.0.1:{port}{HOOK_PATH}",
        credentials_file=str(token_file(paths.state_dir, environ)),
    )


def server_hook(data_dir: Path, api_url: str, environ: Mapping[str, str]) -> ConveyorHook:
    """Where the server's Alertmanager delivers: the server's own API (`api_url`, on
    loopback), `POST /hooks/alertmanager`."""
    return ConveyorHook(
        url=api_url.rstrip("/") + HOOK_PATH,
        credentials_file=str(token_file(data_dir, environ)),
    )


def agent_receiver(
    paths: ProjectPaths, environ: Mapping[str, str], engine: Engine
) -> AlertReceiver:
    """The receiver of a project's agent: events on the project's timeline."""
    return AlertReceiver(token_file(paths.state_dir, environ), engine.timeline.emit)


def forget_receiver_port(state_dir: Path) -> None:
    """The kept port could not be bound (taken while the agent was away): the next
    `receiver_port` picks another, and the next rendering of alertmanager.yml follows."""
    (alerts_dir(state_dir) / "receiver.json").unlink(missing_ok=True)


L = TypeVar("L")


def agent_listener(
    project: Project, engine: Engine, listen: Callable[[AlertReceiver, int], L]
) -> L | None:
    """The agent's receiver, listening (`listen(receiver, port)`, which binds or raises
    OSError) on its kept port, or on another one if that was taken meanwhile. None while
    metrics are off, and None, said on the timeline, when it cannot listen."""
    paths = project.paths()
    if not metrics_enabled(paths, project.environ):
        return None
    try:
        receiver = agent_receiver(paths, project.environ, engine)
        for attempt in (1, 2):
            port = receiver_port(paths.state_dir, project.environ)
            try:
                return listen(receiver, port)
            except OSError as e:
                if attempt == 2:
                    raise AlertsError(f"port {port}: {e.strerror or e}") from e
                forget_receiver_port(paths.state_dir)
    except ConveyorError as e:
        engine.timeline.emit(
            "reconciler.error",
            f"the alert receiver is not listening ({e}): alerts stay in Alertmanager",
            level="warning",
        )
    return None


# ---- rule files ---------------------------------------------------------------------------------


def slo_targets(
    project: str, environment: str, release: Release | None
) -> list[prometheus_rules.SLOTarget]:
    """The SLOs of the services of a serving release (none before the first release)."""
    if release is None:
        return []
    slos = {name: sr.service.slo for name, sr in release.services.items()}
    return prometheus_rules.slo_targets(project, environment, slos)


def alert_targets(
    project: str, environment: str, release: Release | None
) -> list[prometheus_rules.AlertTarget]:
    """The services of a serving release with alert thresholds of their own
    (x-conveyor.alerts over the environment's defaults)."""
    if release is None:
        return []
    own = {name: sr.service.alerts for name, sr in release.services.items()}
    return prometheus_rules.alert_targets(project, environment, own)


@dataclass(frozen=True)
class RulesRefresh:
    sync: RulesSync
    reloaded: bool  # Prometheus answered the reload (False: not asked, or not running)


def refresh_rules(
    rules_dir: Path,
    targets: Iterable[prometheus_rules.SLOTarget],
    prometheus_url: str | None,
    settings: prometheus_rules.AlertSettings | None = None,
    promtool: str | None = None,
    own: Iterable[prometheus_rules.AlertTarget] = (),
) -> RulesRefresh:
    """Write the rule files for `targets` (SLOs) and `own` (services with alert thresholds
    of their own), checked with promtool, and, when one changed, have the Prometheus at
    `prometheus_url` load them. Raises ValidationFailed for a file promtool rejects (a bug:
    they are rendered), leaving the one in use."""
    files = prometheus_rules.rule_files(
        list(targets), settings or prometheus_rules.AlertSettings(), own
    )
    sync = sync_rule_files(rules_dir, files, program=promtool)
    reloaded = False
    if sync.changed and prometheus_url is not None:
        reloaded = reload_prometheus(prometheus_url)
    return RulesRefresh(sync, reloaded)


def metrics_dir(state_dir: Path) -> Path:
    """The metrics stack's directory (docs/metrics.md): `<state>/metrics`."""
    return state_dir / "metrics"


def _kept_port(state_dir: Path, component: str) -> int | None:
    """A port of the metrics stack from `<state>/metrics/ports.json` (docs/metrics.md)."""
    try:
        port = int(json.loads((metrics_dir(state_dir) / "ports.json").read_text())[component])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if 0 < port < 65536 else None


class AlertRulesController:
    """The agent's pass over the project's rule files: after a deploy or rollback changes the
    serving release's SLOs or alert thresholds, the files change and Prometheus reloads them.
    Does nothing while the project has no metrics stack configured
    (`<state>/metrics/prometheus/prometheus.yml` absent: metrics off, or not set up yet)."""

    name = "alert-rules"

    def __init__(self, engine: Engine, promtool: str | None = None) -> None:
        self.engine = engine
        self.promtool = promtool

    def tick(self) -> RulesRefresh | None:
        state = self.engine.paths.state_dir
        prometheus = metrics_dir(state) / "prometheus"
        if not (prometheus / "prometheus.yml").exists():
            return None
        environment = self.engine.timeline.subject.environment or self.engine.project
        release = self.engine.store.current_release()
        project = self.engine.project
        targets = slo_targets(project, environment, release)
        own = alert_targets(project, environment, release)
        port = _kept_port(state, "prometheus")
        url = f"http://127.0.0.1:{port}" if port is not None else None
        return refresh_rules(prometheus / "rules", targets, url, promtool=self.promtool, own=own)


# ---- conveyor alerts ----------------------------------------------------------------------------


def alertmanager_url(state_dir: Path, environ: Mapping[str, str], given: str | None) -> str:
    """Where to ask: `--alertmanager`, CONVEYOR_ALERTMANAGER_URL, CONVEYOR_ALERTMANAGER_PORT,
    else the port the metrics stack keeps in `<state>/metrics/ports.json`."""
    if given:
        return given.rstrip("/")
    if environ.get(ALERTMANAGER_SETTING):
        return environ[ALERTMANAGER_SETTING].rstrip("/")
    port_text = environ.get(AM_PORT_SETTING, "").strip()
    if port_text.isdigit():
        return f"http://127.0.0.1:{int(port_text)}"
    port = _kept_port(state_dir, "alertmanager")
    if port is None:
        raise AlertsError(
            f"no Alertmanager known for this project ({metrics_dir(state_dir)}/ports.json "
            "lists none): is it up with metrics on? Or pass --alertmanager URL"
        )
    return f"http://127.0.0.1:{port}"


def view_of(alert: Alert) -> AlertView:
    return AlertView(
        name=alert.name,
        state=alert.state,
        severity=alert.severity,
        project=alert.label("project"),
        environment=alert.label("environment"),
        service=alert.label("service"),
        summary=alert.summary,
        since=alert.starts_at,
        ended=alert.ends_at,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
    )


def resolved_view(event: Event) -> AlertView | None:
    """A resolved alert as its `alert.resolved` event recorded it."""
    d = event.data
    labels = d.get("labels")
    annotations = d.get("annotations")
    if not isinstance(labels, dict):
        return None
    starts = d.get("starts_at")
    ends = d.get("ends_at")
    return AlertView(
        name=str(d.get("alertname") or labels.get("alertname") or ""),
        state="resolved",
        severity=labels.get("severity"),
        project=labels.get("project"),
        environment=labels.get("environment"),
        service=labels.get("service"),
        summary=event.message,
        since=float(starts) if isinstance(starts, int | float) else event.ts,
        ended=float(ends) if isinstance(ends, int | float) else event.ts,
        labels={str(k): str(v) for k, v in labels.items()},
        annotations=(
            {str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, dict)
            else {}
        ),
    )


def alerts_view(
    url: str, firing: Sequence[Alert], resolved_events: Sequence[Event], since: float
) -> AlertsView:
    """Firing alerts (Alertmanager's), then the ones resolved since `since` (newest first),
    each once, leaving out one that fires again."""
    now_firing = {json.dumps(sorted(a.labels.items())) for a in firing}
    resolved: list[AlertView] = []
    seen: set[str] = set()
    for event in resolved_events:
        if event.kind != "alert.resolved" or event.ts < since:
            continue
        view = resolved_view(event)
        if view is None:
            continue
        identity = json.dumps(sorted(view.labels.items()))
        if identity in seen or identity in now_firing:
            continue
        seen.add(identity)
        resolved.append(view)
    return AlertsView(
        alertmanager=url,
        alerts=[view_of(a) for a in firing] + resolved,
        resolved_since=since,
    )


def list_alerts(
    url: str, events: EventLog | None, window: float = RESOLVED_WINDOW, now: float | None = None
) -> AlertsView:
    """`conveyor alerts`: what Alertmanager at `url` holds, and what `events` (the project's
    or the server's timeline) recorded as resolved over the last `window` seconds."""
    firing = AlertmanagerAPI(url).alerts()
    since = (time.time() if now is None else now) - window
    recent = events.recent(["alert.resolved"], since) if events is not None else []
    return alerts_view(url, firing, recent, since)


def project_alerts(
    project: Project, alertmanager: str | None = None, window: float = RESOLVED_WINDOW
) -> AlertsView:
    """`conveyor alerts` on a project: its Alertmanager's alerts and the ones its timeline
    recorded as resolved. A project a `conveyor server` manages is watched by the server's
    Alertmanager (`<data>/metrics`), whose alerts of this project are listed; the resolved
    ones are in the server's timeline (`GET /api/v1/alerts`), not here."""
    paths = project.paths()
    owner = read_owner(paths.state_dir)
    if owner is not None:
        url = alertmanager_url(Path(owner.data_dir), project.environ, alertmanager)
        firing = [a for a in AlertmanagerAPI(url).alerts() if a.label("project") == paths.project]
        return alerts_view(url, firing, [], time.time() - window)
    url = alertmanager_url(paths.state_dir, project.environ, alertmanager)
    if not (paths.state_dir / DB_NAME).exists():
        return list_alerts(url, None, window)
    store = Store.open(paths.state_dir)
    try:
        return list_alerts(url, store.events, window)
    finally:
        store.close()


def server_alerts(
    data_dir: Path, sdb: ServerDatabase, environ: Mapping[str, str], window: float
) -> AlertsView:
    """`GET /api/v1/alerts`: the server's Alertmanager (`<data>/metrics`) and the resolved
    alerts of the server's timeline."""
    return list_alerts(alertmanager_url(data_dir, environ, None), sdb.events, window)
