"""Jinja2 for the dashboard's pages: the environment (autoescaped), the filters templates use
(times, durations, commits) and the one way a page is answered (`page`), with the headers
every dashboard page carries."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# Scripts and styles come from /static only (no inline script, no CDN); frames and other
# sites' forms are refused. htmx is configured not to inject its inline style or eval.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry CSRF tokens and what a signed-in user may see
}


def ago(ts: float | None, now: float | None = None) -> str:
    """`3 min ago`: how long before `now` the time `ts` (UNIX seconds) was."""
    if ts is None:
        return "—"
    seconds = max(0.0, (time.time() if now is None else now) - ts)
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def iso(ts: float | None) -> str:
    """UTC ISO 8601 for a <time datetime=...> attribute and its tooltip."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short(sha: str | None) -> str:
    return sha[:8] if sha else "—"


def author_name(author: str) -> str:
    """`Name <mail>` -> `Name` (the mail stays in the tooltip)."""
    return author.split("<", 1)[0].strip() or author


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a misspelt name fails the page (and its test), not blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, duration=duration, iso=iso, short=short, author=author_name)
    env.globals["version"] = version("conveyor")
    return env


JINJA = _environment()


def render(name: str, **context: Any) -> str:
    return JINJA.get_template(name).render(**context)


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(name, **context), status_code=status, headers=SECURITY_HEADERS)
