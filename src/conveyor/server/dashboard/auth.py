"""Who is looking at a dashboard page: the session behind the cookie, its CSRF token, and
the checks acting requests pass (a session, then the CSRF token, then the role: the API's
`act` audits that last one). Pages without a session redirect to the sign-in page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.app.web_sessions import resume_session
from conveyor.model.access import Principal, role_allows
from conveyor.model.web_session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    WebSession,
    cookie_attributes,
    csrf_ok,
    csrf_token,
)
from conveyor.server.api import ApiState, state_of
from conveyor.server.dashboard.errors import PageError, SignInRequired

MAX_FORM = 64 * 1024  # a dashboard form is a few fields


@dataclass(frozen=True)
class Visit:
    """A request of a signed-in user."""

    session: WebSession
    csrf: str  # put in every form; checked on every POST

    @property
    def principal(self) -> Principal:
        return Principal(name=self.session.name, role=self.session.role)

    @property
    def can_act(self) -> bool:
        """Deployers and admins act on environments; a viewer gets no action buttons."""
        return role_allows(self.session.role, "deployer")


def api_state(request: Request) -> ApiState:
    return state_of(request.app)


def _visit(request: Request) -> Visit:
    """The signed-in visit (sync: FastAPI runs it in a worker thread; it reads the database)."""
    sid = request.cookies.get(SESSION_COOKIE)
    s = resume_session(api_state(request).db, sid)
    if s is None or sid is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return Visit(s, csrf_token(sid))


CurrentVisit = Annotated[Visit, Depends(_visit)]


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of a repeated one); 413 past MAX_FORM."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise PageError(413, "The form is too large.")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def check_csrf(request: Request, visit: Visit, form: dict[str, str]) -> None:
    """403 unless the form (or the X-CSRF-Token header) carries the session's CSRF token."""
    presented = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_ok(visit.csrf, presented):
        raise PageError(403, "The form's CSRF token is missing or wrong: reload the page.")


async def acting_visit(request: Request) -> tuple[Visit, dict[str, str]]:
    """A POST's visit and form, its CSRF token checked."""
    visit = await run_in_threadpool(_visit, request)
    form = await read_form(request)
    check_csrf(request, visit, form)
    return visit, form


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, sid: str, max_age: float) -> None:
    response.set_cookie(
        SESSION_COOKIE, sid, **cookie_attributes(secure=is_https(request), max_age=max_age)
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
