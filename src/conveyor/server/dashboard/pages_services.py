"""The services pages (issue 11, item 5): `GET /services` lists every environment's services,
`GET /environments/{env}/services/{service}` shows one: replicas, heals, RED charts with the
rollouts drawn on them (uPlot, static/charts.js), edges; or says plainly that there are no
metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.errors import NotFound
from conveyor.server.dashboard.auth import CurrentVisit, api_state
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.render import JINJA, page
from conveyor.server.dashboard.service_view import (
    chart_json,
    latest,
    markers,
    service_page,
    service_rows,
)
from conveyor.server.dashboard.sources import sources_of

router = APIRouter(include_in_schema=False)
JINJA.globals.setdefault("chart_json", chart_json)
JINJA.globals.setdefault("chart_markers", markers)
JINJA.globals.setdefault("latest_value", latest)


@router.get("/services")
async def services(request: Request, visit: CurrentVisit) -> Response:
    state = api_state(request)
    rows, problems = await run_in_threadpool(service_rows, state)
    base = await run_in_threadpool(base_context, state, visit, "services")
    return page("services.html", **base, rows=rows, problems=problems)


@router.get("/environments/{env}/services/{service}")
async def service(request: Request, env: str, service: str, visit: CurrentVisit) -> Response:
    state = api_state(request)
    try:
        facts = await run_in_threadpool(service_page, state, sources_of(request), env, service)
    except NotFound as e:
        raise PageError(404, str(e)) from None
    base = await run_in_threadpool(base_context, state, visit, "services")
    return page("service.html", **base, s=facts)
