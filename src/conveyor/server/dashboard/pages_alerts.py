"""The alerts and checks page (issue 11, item 7): `GET /alerts`, with a live region that the
event stream reloads (an alert firing or resolving, a check changing state are events)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.server.dashboard.alerts_view import alerts_page
from conveyor.server.dashboard.auth import CurrentVisit, api_state
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.render import page
from conveyor.server.dashboard.sources import sources_of

router = APIRouter(include_in_schema=False)


@router.get("/alerts")
async def alerts(request: Request, visit: CurrentVisit) -> Response:
    state = api_state(request)
    facts = await run_in_threadpool(alerts_page, state, sources_of(request))
    base = await run_in_threadpool(base_context, state, visit, "alerts")
    return page("alerts.html", **base, a=facts)


@router.get("/fragments/alerts")
async def alerts_fragment(request: Request, visit: CurrentVisit) -> Response:
    facts = await run_in_threadpool(alerts_page, api_state(request), sources_of(request))
    return page("fragments/alerts.html", visit=visit, a=facts)
