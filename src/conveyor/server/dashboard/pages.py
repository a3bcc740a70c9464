"""The pages: the overview (every environment side by side) and an environment's page, each
with the fragment its live region reloads when the event stream says something changed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.errors import NotFound
from conveyor.server.api import ApiState
from conveyor.server.dashboard.auth import CurrentVisit, Visit, api_state
from conveyor.server.dashboard.cards import cards, environment_page
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.flash import FLASH_COOKIE, take_flash
from conveyor.server.dashboard.nav import NAV
from conveyor.server.dashboard.render import page

router = APIRouter(include_in_schema=False)


def base_context(state: ApiState, visit: Visit, active: str, **more: Any) -> dict[str, Any]:
    """What the layout (base.html) needs: who is signed in, the environments for the header,
    the navigation and which item is current, where the live region listens from."""
    return {
        "visit": visit,
        "environments": state.backend.environments(),
        "nav": NAV,
        "active": active,
        "last_event": state.backend.last_event_id() or 0,
        **more,
    }


def _overview(state: ApiState) -> dict[str, Any]:
    return {"cards": cards(state)}


@router.get("/")
def overview(request: Request, visit: CurrentVisit) -> Response:
    state = api_state(request)
    return page("overview.html", **base_context(state, visit, "overview"), **_overview(state))


@router.get("/fragments/overview")
def overview_fragment(request: Request, visit: CurrentVisit) -> Response:
    return page("fragments/overview.html", visit=visit, **_overview(api_state(request)))


def _environment(state: ApiState, env: str) -> dict[str, Any]:
    try:
        return {"env": environment_page(state, env)}
    except NotFound as e:
        raise PageError(404, str(e)) from None


@router.get("/environments/{env}")
async def environment(request: Request, env: str, visit: CurrentVisit) -> Response:
    state = api_state(request)
    context = await run_in_threadpool(_environment, state, env)
    base = await run_in_threadpool(base_context, state, visit, f"env:{env}")
    response = page("environment.html", **base, **context, flash=take_flash(request))
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


@router.get("/fragments/environments/{env}")
def environment_fragment(request: Request, env: str, visit: CurrentVisit) -> Response:
    return page("fragments/environment.html", visit=visit, **_environment(api_state(request), env))
