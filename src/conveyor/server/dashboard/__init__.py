"""The web dashboard (issue 11): server-rendered pages over the same backend as the API,
served by `conveyor server` on the API's origin: pages at `/`, assets at `/static/`.

Like the API it is an entry point: it reads and acts only through the `ServerBackend`, the
server database (sessions, audit) and the API's `act`, never engines or adapters.

    install_dashboard(app)   # app from server.api.create_app

Routes: `GET/POST /signin`, `POST /signout`, `GET /` (overview), `GET /environments/{env}`,
`GET/POST /environments/{env}/actions/{action}` (confirm, then act), `GET /fragments/...`
(the live regions), `GET /live` (server-sent `changed` events); the pipelines pages
(`/environments/{env}/pipelines…`, pages_pipelines.py; a job's retry and play,
pages_job_actions.py) and a commit's timeline
(`/environments/{env}/commits/{sha}`, pages_timeline.py). docs/dashboard.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from conveyor.server.dashboard import (
    actions,
    live,
    pages,
    pages_alerts,
    pages_delivery,
    pages_job_actions,
    pages_logs,
    pages_pipelines,
    pages_services,
    pages_timeline,
    signin,
)
from conveyor.server.dashboard.errors import PageError, SignInRequired, page_error, sign_in_required
from conveyor.server.dashboard.render import STATIC
from conveyor.server.dashboard.sources import ObserveSources, install_sources

__all__ = ["ObserveSources", "install_dashboard"]


def install_dashboard(app: FastAPI, sources: ObserveSources | None = None) -> None:
    """Serve the dashboard from `app` (the API's FastAPI application). `sources`: the
    server's Prometheus and Alertmanager for the services and alerts pages (None: none)."""
    install_sources(app, sources or ObserveSources())
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(PageError, page_error)
    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(live.router)
    app.include_router(pages_pipelines.router)
    app.include_router(pages_job_actions.router)
    app.include_router(pages_timeline.router)
    app.include_router(pages_logs.router)
    app.include_router(pages_services.router)
    app.include_router(pages_alerts.router)
    app.include_router(pages_delivery.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
