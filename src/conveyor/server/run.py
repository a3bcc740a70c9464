"""`conveyor server`: open the server database, build the API over a backend and serve it with
uvicorn in the foreground until SIGINT or SIGTERM, then return (the command exits 0).

The backend is `NoEnvironments` (a PLACEHOLDER) until the GitOps controller lands: the server
already authenticates, audits and persists webhook deliveries as pending; the controller
will implement `ServerBackend`, take those deliveries and be built here from `source`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
import uvicorn
from fastapi import FastAPI

from conveyor.app.access import open_server_db
from conveyor.errors import ServerError
from conveyor.server.api import create_app, state_of
from conveyor.server.backend import NoEnvironments
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


def run_server(options: ServerOptions) -> None:
    """Serve until SIGINT or SIGTERM. Raises ServerError when the address cannot be bound."""
    sdb = open_server_db(options.data_dir)
    try:
        backend = NoEnvironments()  # PLACEHOLDER: the GitOps controller for options.source
        app = create_app(backend, sdb, hook_secret=options.hook_secret)
        log.info(
            "conveyor server starting",
            source=options.source,
            listen=options.listen.url,
            data=str(options.data_dir),
            webhooks="on" if options.hook_secret else "off (no secret)",
            controller="none yet (placeholder backend: no environments)",
        )
        serve(app, options.listen)
        log.info("conveyor server stopped")
    finally:
        sdb.close()


class _Server(uvicorn.Server):
    """uvicorn's server that also ends the API's open event streams when told to stop, so a
    connected client does not hold the shutdown."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state_of(self._app).stopping.set()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, listen: Listen) -> None:
    """Serve `app` in the foreground until SIGINT or SIGTERM (a clean stop returns)."""
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_level="info",
        timeout_graceful_shutdown=_GRACE_SECONDS,
        server_header=False,
    )
    server = _Server(config, app)

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
