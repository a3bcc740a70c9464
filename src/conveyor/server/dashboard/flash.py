"""The outcome of an action, carried across its redirect (POST, then 303 to the environment's
page) in a short-lived cookie: the page shows it once and drops it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

from conveyor.model.web_session import cookie_attributes

FLASH_COOKIE = "conveyor_flash"
_SECONDS = 60


@dataclass(frozen=True)
class Flash:
    kind: Literal["ok", "refused", "failed"]
    message: str


def give_flash(response: Response, request: Request, flash: Flash) -> None:
    value = quote(json.dumps({"kind": flash.kind, "message": flash.message[:1500]}))
    attrs = cookie_attributes(secure=request.url.scheme == "https", max_age=_SECONDS)
    response.set_cookie(FLASH_COOKIE, value, **attrs)


def take_flash(request: Request) -> Flash | None:
    """The flash the request carries, if any (a malformed one is ignored: it is only words)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        found = json.loads(unquote(raw))
        kind, message = found["kind"], str(found["message"])
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in ("ok", "refused", "failed"):
        return None
    return Flash(kind, message)
