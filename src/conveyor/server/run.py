"""`conveyor server`: open the server database, build the API over a backend and serve it with
uvicorn in the foreground until SIGINT or SIGTERM, then return (the command exits 0).

The backend is the GitOps controller (`app.controller`), whose worker thread fetches the
source, syncs every environment and heals them until the server stops (on its heal interval,
and at once on the Docker events of an environment's containers). Webhook deliveries
are persisted as pending by the API before it answers; each fetch-and-sync pass covers every
delivery received before it, and marks them done (after a crash, the first pass of the next
start covers those still pending).

One writer: once the address is bound, the server rewrites the ownership record of every
project its data directory manages with its own PID and address (`app.ownership.reclaim`),
and records each environment project the controller opens (`claim_project`), so local
commands on those projects refuse or go through the API (docs/server.md, "One writer"). The
worker starts only then: a server that cannot bind changes nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
import uvicorn
from fastapi import FastAPI

from conveyor.app.access import open_server_db
from conveyor.app.alerts import AlertReceiver, server_alerts, server_hook, token_file
from conveyor.app.backup_schedule import BackupScheduler
from conveyor.app.controller import HEAL_INTERVAL, Controller
from conveyor.app.flux_hook import FluxReceiver
from conveyor.app.hooks import settle_deliveries
from conveyor.app.metrics import ServerMetrics
from conveyor.app.ownership import ServerIdentity, claim_project, reclaim
from conveyor.app.project import Project
from conveyor.errors import ServerError
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.events import Event
from conveyor.server.api import create_app, state_of
from conveyor.server.dashboard import ObserveSources, install_dashboard
from conveyor.server.listen import Listen

log = structlog.get_logger("conveyor.server")
# An event stream open at shutdown is ended by `stopping`; this bounds anything else.
_GRACE_SECONDS = 5


@dataclass(frozen=True)
class ServerOptions:
    source: str  # the repository: a path or a file://, git://, ssh:// or https:// URL
    listen: Listen
    data_dir: Path
    hook_secret: str | None
    executor: str = "docker"  # CI jobs: docker or shell
    heal_interval: float = HEAL_INTERVAL  # seconds between heal passes (Docker events: at once)


def run_server(options: ServerOptions) -> None:
    """Serve until SIGINT or SIGTERM. Raises ServerError when the address cannot be bound."""
    sdb = open_server_db(options.data_dir)
    stopping = threading.Event()
    worker: threading.Thread | None = None

    def settle(started: float) -> None:
        # Deliveries received during the pass wait for the next one (their wake makes it).
        settle_deliveries(sdb, started)

    # One writer: the projects this server manages say so and name this process
    # (docs/server.md, "One writer").
    me = ServerIdentity.this_process(
        api_url(options.listen), options.data_dir, _shown_source(options.source), os.getpid()
    )

    def claim(spec: EnvironmentSpec, project: Project) -> None:
        claim_project(me, spec, project, os.environ)

    # One Prometheus, Alertmanager and node exporter for every environment this server runs
    # (docs/metrics.md), and Conveyor's own metrics from its events.
    metrics = ServerMetrics(options.data_dir, os.environ)
    metrics.hook = server_hook(options.data_dir, api_url(options.listen), os.environ)

    def on_event(event: Event) -> None:
        log_event(event)
        metrics.observe_event(event)

    try:
        controller = Controller(
            options.source,
            options.data_dir,
            os.environ,
            executor="shell" if options.executor == "shell" else "docker",
            on_synced=settle,
            on_event=on_event,
            journal=sdb.events,
            on_project=claim,
            heal_interval=options.heal_interval,
            docker_events=True,
            after_heal=lambda engines: metrics.tick(engines, time.monotonic()),
        )
        metrics.report = controller.report
        # Alertmanager's deliveries become events the notification channels take; its
        # configuration carries the same token file (app.alerts.server_hook).
        token = token_file(options.data_dir, os.environ)
        alerts = AlertReceiver(token, controller.notice)
        # Flux's events about Kubernetes environments, signed with the webhook secret
        flux = FluxReceiver(
            options.hook_secret,
            controller.notice,
            lambda: controller.config.environments if controller.config is not None else {},
        )
        app = create_app(
            controller,
            sdb,
            hook_secret=options.hook_secret,
            alerts=alerts,
            flux=flux,
            alerts_view=lambda window: server_alerts(options.data_dir, sdb, os.environ, window),
        )
        # the web dashboard on the same origin (docs/dashboard.md), with the metrics stack's
        # Prometheus and Alertmanager for its services and alerts pages
        install_dashboard(app, ObserveSources.of_server(options.data_dir, os.environ))
        log.info(
            "conveyor server starting",
            source=options.source,
            listen=options.listen.url,
            data=str(options.data_dir),
            webhooks="on" if options.hook_secret else "off (no secret)",
            alert_token_file=str(token),
        )

        def listening() -> None:
            # Bound, so this process is the server: claim the projects its data directory
            # manages, then start changing the world. A server that cannot start touches nothing.
            nonlocal worker
            claimed = reclaim(me, os.environ)
            if claimed:
                log.info("projects claimed", projects=[o.project for o in claimed], pid=me.pid)
            own = metrics.start()
            if own is not None:
                where = f"http://127.0.0.1:{own.endpoint.port}/metrics" if own.endpoint else None
                log.info("conveyor metrics", url=where, error=own.error)
            worker = threading.Thread(
                target=controller.run, args=(stopping,), name="controller", daemon=True
            )
            worker.start()
            # conveyor.yaml's backup schedules, once a minute (docs/backups.md)
            backups = BackupScheduler(
                controller.fetched_config,
                controller.served_project,
                os.environ,
                gauge=metrics.backup_schedule,
            )
            threading.Thread(
                target=backups.run,
                args=(stopping, lambda what: log.error("backup scheduler", error=what)),
                name="backups",
                daemon=True,
            ).start()

        serve(app, options.listen, on_started=listening)
        log.info("conveyor server stopped")
    finally:
        stopping.set()
        if worker is not None:
            controller.wake()
            # A sync in progress finishes its current step's wait at most; what it leaves is
            # redone by the next start (the journal and the environment's progress say so).
            worker.join(timeout=_GRACE_SECONDS)
            controller.close()
        stopped = metrics.stop()
        if stopped:
            log.info("metrics stopped", components=stopped)
        sdb.close()


def log_event(event: Event) -> None:
    """What the controller does, in the server's log: every durable event but a job's output
    (that is in the job's log, `GET /api/v1/environments/{env}/jobs/{id}/log`)."""
    if event.kind == "job.output":
        return
    subject = {
        k: v
        for k, v in (
            ("project", event.subject.project),
            ("environment", event.subject.environment),
            ("commit", event.subject.commit[:12] if event.subject.commit else None),
            ("pipeline", event.subject.pipeline),
        )
        if v is not None
    }
    level = {"error": "error", "warning": "warning"}.get(event.level, "info")
    getattr(log, level)(event.message, kind=event.kind, **subject)


def api_url(listen: Listen) -> str:
    """Where a command on this host reaches the API: a wildcard bind is reached on loopback."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 — compared, not bound
    host = wildcard.get(listen.host, listen.host)
    return Listen(host, listen.port).url


def _shown_source(source: str) -> str:
    """The source as a command elsewhere can give it again: a path made absolute."""
    path = Path(source)
    return str(path.resolve()) if "://" not in source and path.exists() else source


class _Server(uvicorn.Server):
    """uvicorn's server that also ends the API's open event streams when told to stop, so a
    connected client does not hold the shutdown."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, on_started: Callable[[], None] | None
    ) -> None:
        super().__init__(config)
        self._app = app
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:
            self._on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state_of(self._app).stopping.set()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, listen: Listen, on_started: Callable[[], None] | None = None) -> None:
    """Serve `app` in the foreground until SIGINT or SIGTERM (a clean stop returns).
    `on_started` is called once the address is bound, before the first request."""
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_level="info",
        timeout_graceful_shutdown=_GRACE_SECONDS,
        server_header=False,
    )
    server = _Server(config, app, on_started)

    def stopped(_sig: int, _frame: FrameType | None) -> None:
        """uvicorn raises the signal it stopped on again once it has stopped, for the
        handlers that were there before it: land here, so the stop is a clean exit."""

    previous = {s: signal.signal(s, stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit as e:  # uvicorn exits when it cannot bind or start
        raise ServerError(
            f"the server could not start on {listen} (is the port taken? see the log above)"
        ) from e
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
