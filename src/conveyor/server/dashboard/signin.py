"""Sign-in with an API token, and sign-out. The sign-in form has no session yet, so its CSRF
token is a double-submit value: a random one in an HttpOnly cookie and in the form."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from conveyor.app.web_sessions import close_session, open_session, resume_session
from conveyor.model.web_session import (
    CSRF_FIELD,
    MAX_AGE_SECONDS,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    cookie_attributes,
    csrf_ok,
    new_secret,
)
from conveyor.server.dashboard.auth import (
    acting_visit,
    api_state,
    is_https,
    read_form,
    safe_next,
    set_session_cookie,
)
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.render import SECURITY_HEADERS, page

router = APIRouter(include_in_schema=False)
SIGNIN_FORM_SECONDS = 3600  # the sign-in form's CSRF cookie


def _signin_page(request: Request, next_path: str, error: str | None, status: int) -> Response:
    value = new_secret()
    response = page(
        "signin.html",
        status=status,
        csrf=value,
        next_path=next_path,
        error=error,
        visit=None,
        environments=[],
    )
    attrs = cookie_attributes(secure=is_https(request), max_age=SIGNIN_FORM_SECONDS)
    response.set_cookie(SIGNIN_COOKIE, value, **attrs)
    return response


@router.get("/signin")
def signin_form(request: Request, next: str = "/") -> Response:
    sid = request.cookies.get(SESSION_COOKIE)
    if resume_session(api_state(request).db, sid) is not None:
        return RedirectResponse(safe_next(next), status_code=303, headers=SECURITY_HEADERS)
    return _signin_page(request, safe_next(next), None, 200)


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await read_form(request)
    if not csrf_ok(request.cookies.get(SIGNIN_COOKIE, ""), form.get(CSRF_FIELD)):
        raise PageError(403, "The sign-in form expired or came from elsewhere: load it again.")
    next_path = safe_next(form.get("next"))
    token = form.get("token", "")
    opened = await run_in_threadpool(open_session, api_state(request).db, token) if token else None
    if opened is None:
        why = "That token is not valid: unknown or revoked." if token else "Enter an API token."
        return _signin_page(request, next_path, why, 401)
    response = RedirectResponse(next_path, status_code=303, headers=SECURITY_HEADERS)
    set_session_cookie(response, request, opened.session_id, MAX_AGE_SECONDS)
    response.delete_cookie(SIGNIN_COOKIE, path="/")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    await acting_visit(request)  # a session and its CSRF token: no one signs you out from afar
    await run_in_threadpool(close_session, api_state(request).db, request.cookies[SESSION_COOKIE])
    response = RedirectResponse("/signin", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
