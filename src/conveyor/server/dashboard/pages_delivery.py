"""The delivery page (issue 11, item 8): `GET /delivery` (every environment) and
`GET /environments/{env}/delivery`: DORA metrics with weekly trends, and the environment's
actions, which go through the confirmation pages of actions.py (audited)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.errors import NotFound
from conveyor.server.dashboard.auth import CurrentVisit, api_state
from conveyor.server.dashboard.delivery_view import SINCE, WEEKS, deliveries
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.render import page

router = APIRouter(include_in_schema=False)


@router.get("/delivery")
async def delivery_all(request: Request, visit: CurrentVisit) -> Response:
    state = api_state(request)
    found = await run_in_threadpool(deliveries, state)
    base = await run_in_threadpool(base_context, state, visit, "delivery")
    return page("delivery.html", **base, items=found, since=SINCE, weeks=WEEKS, one=None)


@router.get("/environments/{env}/delivery")
async def delivery_one(request: Request, env: str, visit: CurrentVisit) -> Response:
    state = api_state(request)
    try:
        found = await run_in_threadpool(deliveries, state, env)
    except NotFound as e:
        raise PageError(404, str(e)) from None
    base = await run_in_threadpool(base_context, state, visit, "delivery")
    return page("delivery.html", **base, items=found, since=SINCE, weeks=WEEKS, one=env)
