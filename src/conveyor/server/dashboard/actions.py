"""The environment actions from the dashboard: promote, roll back, suspend, resume, approve.
Each is a confirmation page (GET, works without JavaScript) whose form POSTs the action with
the session's CSRF token; the POST goes through the API's own `act` (the same role check and
audit record as `POST /api/v1/environments/{env}/{action}`), then redirects to the
environment's page with the outcome shown once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from conveyor.app.server_views import ActionName, ActionResult, EnvironmentSummary
from conveyor.errors import ActionRefused, NotFound, ServerError
from conveyor.model.access import Principal
from conveyor.server.api import ApiState, act
from conveyor.server.dashboard.auth import CurrentVisit, Visit, acting_visit, api_state
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.flash import Flash, give_flash
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.render import SECURITY_HEADERS, page

router = APIRouter(include_in_schema=False)
# An environment's actions; a pipeline's (cancel) and a job's (retry, play) have their own
# pages (pages_pipelines.py).
ACTIONS: tuple[str, ...] = tuple(
    a for a in get_args(ActionName) if a not in ("cancel", "retry", "play")
)


@dataclass(frozen=True)
class Asked:
    """An action as asked: its name, environment and arguments (checked)."""

    action: str
    env: str
    release: int | None = None  # rollback: to this release (None: the previous); approve
    source: str | None = None  # promote: from this environment

    @property
    def detail(self) -> dict[str, Any]:
        """The audit record's `detail`: what the API's route records for the same request."""
        match self.action:
            case "promote":
                return {"from": self.source}
            case "rollback":
                return {"to_release": self.release}
            case "approve":
                return {"release": self.release}
        return {}

    def run(self, state: ApiState, p: Principal) -> ActionResult:
        b, env = state.backend, self.env
        do: Callable[[], ActionResult]
        match self.action:
            case "promote":
                source = self.source or ""
                do = lambda: b.promote(env, source, p)  # noqa: E731
            case "rollback":
                to = self.release
                do = lambda: b.rollback(env, to, p)  # noqa: E731
            case "approve":
                n = self.release or 0
                do = lambda: b.approve(env, n, p)  # noqa: E731
            case "suspend":
                do = lambda: b.suspend(env, p)  # noqa: E731
            case _:
                do = lambda: b.resume(env, p)  # noqa: E731
        return act(state, p, self.action, env, self.detail, do)


def asked(action: str, env: str, release: str | None, source: str | None) -> Asked:
    if action not in ACTIONS:
        raise PageError(404, f"There is no action {action!r}.")
    number: int | None = None
    if release not in (None, ""):
        if not release.isdigit():
            raise PageError(400, f"release: {release!r} is not a release number.")
        number = int(release)
    if action == "approve" and number is None:
        raise PageError(400, "approve: which release? (release=N)")
    if action == "promote" and not source:
        raise PageError(400, "promote: from which environment? (from=ENV)")
    return Asked(action, env, number, source or None)


def _summary(state: ApiState, env: str) -> EnvironmentSummary:
    for s in state.backend.environments():
        if s.name == env:
            return s
    try:
        state.backend.environment(env)  # the backend's own words for an unknown environment
    except NotFound as e:
        raise PageError(404, str(e)) from None
    raise PageError(404, f"no environment {env!r}")


def _forbidden(visit: Visit) -> PageError:
    return PageError(
        403,
        f"Acting on environments needs the deployer role; you signed in as {visit.session.name!r}, "
        f"a {visit.session.role}.",
    )


@router.get("/environments/{env}/actions/{action}")
def confirm(
    request: Request,
    env: str,
    action: str,
    visit: CurrentVisit,
    release: str | None = None,
) -> Response:
    """The confirmation step: what the action will do, and the form that does it."""
    a = asked(action, env, release, request.query_params.get("from"))
    if not visit.can_act:
        raise _forbidden(visit)
    state = api_state(request)
    summary = _summary(state, env)
    return page(
        "confirm.html",
        **base_context(state, visit, f"env:{env}"),
        asked=a,
        summary=summary,
    )


@router.post("/environments/{env}/actions/{action}")
async def perform(request: Request, env: str, action: str) -> Response:
    visit, form = await acting_visit(request)  # a session, then its CSRF token
    a = asked(action, env, form.get("release"), form.get("from"))
    state = api_state(request)
    back = f"/environments/{env}"
    try:
        result = await run_in_threadpool(a.run, state, visit.principal)
    except HTTPException as e:  # the role check of `act` (recorded as denied)
        if e.status_code == 403:
            raise _forbidden(visit) from None
        raise PageError(e.status_code, str(e.detail)) from None
    except NotFound as e:
        raise PageError(404, str(e)) from None
    except (ActionRefused, ServerError) as e:
        flash = Flash("refused", f"{action} refused: {e}")
    except Exception as e:  # recorded as failed by `act`; the user is told, the page stays
        flash = Flash("failed", f"{action} failed: {type(e).__name__}: {e}")
    else:
        flash = Flash("ok", result.message)
    response = RedirectResponse(back, status_code=303, headers=SECURITY_HEADERS)
    give_flash(response, request, flash)
    return response
