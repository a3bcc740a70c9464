"""Errors a dashboard route answers with a page (the API's own routes keep their JSON)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conveyor.server.dashboard.render import SECURITY_HEADERS, page


class SignInRequired(Exception):
    """No live session: pages redirect to the sign-in page (htmx requests are told to)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def signin_url(next_path: str) -> str:
    return "/signin" if next_path in ("", "/") else f"/signin?next={quote(next_path, safe='/')}"


class PageError(Exception):
    """Answer with the error page: `status` and what to tell the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Refused", 413: "Too large"}


async def page_error(_request: Request, e: Exception) -> Response:
    assert isinstance(e, PageError)
    return page(
        "error.html",
        status=e.status,
        title=TITLES.get(e.status, "Error"),
        message=e.message,
        visit=None,
        environments=[],
    )


async def sign_in_required(request: Request, e: Exception) -> Response:
    """To the sign-in page, and back here after it. An htmx request (a live fragment) is
    told with HX-Redirect, so the sign-in page replaces the page, not a part of it."""
    assert isinstance(e, SignInRequired)
    if request.headers.get("hx-request"):
        # back to the page the fragment was part of, not to the fragment
        shown = urlsplit(request.headers.get("hx-current-url", "/"))
        target = signin_url(shown.path + (f"?{shown.query}" if shown.query else ""))
        return Response(status_code=204, headers={"HX-Redirect": target, **SECURITY_HEADERS})
    target = signin_url(e.next_path)
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
