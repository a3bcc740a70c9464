"""Live updates: `GET /live` is a server-sent event stream for the signed-in browser (the
API's `/api/v1/events/stream` wants an Authorization header, which EventSource cannot send).
It does not repeat the events: it says `changed` once per batch of new events, and the page
reloads its live region (htmx's SSE extension: `hx-trigger="sse:changed"`). A job's output
lines alone change nothing the pages show, so they are not told."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from conveyor.app.web_sessions import resume_session
from conveyor.model.events import Event
from conveyor.model.web_session import SESSION_COOKIE
from conveyor.server.api import ApiState
from conveyor.server.dashboard.auth import CurrentVisit, api_state

router = APIRouter(include_in_schema=False)
QUIET_KINDS = frozenset({"job.output"})  # events no page shows


def changed_message(events: Sequence[Event]) -> str | None:
    """The SSE message for a batch of new events (None: nothing a page shows changed). Its
    `id` is the newest event's, so a reconnecting browser resumes after it (Last-Event-ID)."""
    if not events:
        return None
    shown = [e for e in events if e.kind not in QUIET_KINDS]
    last = events[-1].id
    if not shown:
        return f"id: {last}\n\n"  # moves Last-Event-ID on, triggers nothing
    data = {
        "last": last,
        "kinds": sorted({e.kind for e in shown}),
        "environments": sorted({e.subject.environment for e in shown if e.subject.environment}),
    }
    return f"event: changed\nid: {last}\ndata: {json.dumps(data)}\n\n"


async def changes(
    state: ApiState, after: int | None, still_signed_in: Callable[[], bool]
) -> AsyncIterator[str]:
    """`changed` messages for the events recorded after `after`, until the server stops or the
    session ends (looked at each keepalive period)."""
    position = after
    quiet = 0.0
    yield "retry: 2000\n\n"
    while True:
        batch = await run_in_threadpool(state.backend.events, position, 1000)
        if batch:
            position = batch[-1].id
            message = changed_message(batch)
            if message:
                yield message
        if state.stopping.is_set():
            return
        if len(batch) == 1000:
            continue  # more waiting: read on at once
        if quiet >= state.keepalive:
            # a signed-out or expired session stops here; the browser's reconnect gets 401
            if not await run_in_threadpool(still_signed_in):
                return
            yield ": keepalive\n\n"
            quiet = 0.0
        await anyio.sleep(state.events_poll)
        quiet += state.events_poll


@router.get("/live")
def live(
    request: Request,
    _visit: CurrentVisit,
    after: int | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    state = api_state(request)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    if start is None:
        start = state.backend.last_event_id()
    sid = request.cookies.get(SESSION_COOKIE)

    def still_signed_in() -> bool:
        return resume_session(state.db, sid) is not None

    return StreamingResponse(
        changes(state, start, still_signed_in),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
