"""The logs page (issue 11, item 6): `GET /environments/{env}/logs` searches the environment's
log store with the filters of `conveyor logs` (backend `logs`), `.../logs/live` is the live
tail (backend `log_tail`) as server-sent `line` events carrying the rendered line, which
htmx's SSE extension puts on top of the list, and `.../logs/{id}` shows one line's labels and
fields and its neighbours (the lines just before and after from the same replica). `GET /logs`
goes to the first environment's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from conveyor.app.web_sessions import resume_session
from conveyor.errors import LogQueryError, NotFound
from conveyor.model.logs import LogQuery, LogRecord
from conveyor.model.web_session import SESSION_COOKIE
from conveyor.server.api import ApiState
from conveyor.server.dashboard.auth import CurrentVisit, api_state
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.log_search import LEVELS, LogForm
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.render import JINJA, page, render

router = APIRouter(include_in_schema=False)
NEIGHBOURS = 5  # lines shown before and after a line, from the same replica
TAIL_BATCH = 200


def clock(ts: float | None) -> str:
    """`13:04:05.123` (UTC): a log line's time on the page (the date is in its tooltip)."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


JINJA.filters.setdefault("clock", clock)


def _known(state: ApiState, env: str) -> None:
    if env not in {e.name for e in state.backend.environments()}:
        raise PageError(404, f"no environment {env!r}")


def _search(state: ApiState, env: str, form: LogForm) -> dict[str, Any]:
    """The page's facts: the matching lines, or why the form is wrong; where a tail starts."""
    lines: list[LogRecord] = []
    error = None
    position = 0
    try:
        query = form.query()
        lines = state.backend.logs(env, query)
        position = state.backend.log_tail(env, query, None, 0).position
    except LogQueryError as e:
        error = str(e)
    except NotFound as e:
        raise PageError(404, str(e)) from None
    return {"lines": lines, "error": error, "position": position}


@router.get("/logs")
def logs_home(request: Request, visit: CurrentVisit) -> Response:
    envs = api_state(request).backend.environments()
    if not envs:
        raise PageError(404, "This server has no environment yet: no logs to search.")
    return RedirectResponse(f"/environments/{quote(envs[0].name)}/logs", status_code=303)


@router.get("/environments/{env}/logs")
async def logs(request: Request, env: str, visit: CurrentVisit) -> Response:
    state = api_state(request)
    await run_in_threadpool(_known, state, env)
    form = LogForm.of(request.query_params)
    follow = request.query_params.get("follow") == "1"
    found = await run_in_threadpool(_search, state, env, form)
    base = await run_in_threadpool(base_context, state, visit, "logs")
    return page(
        "logs.html",
        **base,
        env_name=env,
        form=form,
        levels=LEVELS,
        follow=follow,
        query_string=form.query_string(),
        **found,
    )


def _record(state: ApiState, env: str, record_id: int) -> LogRecord:
    """The record with this id: the first one after `id - 1` (ids are the store's order)."""
    got = state.backend.log_tail(env, LogQuery(), record_id - 1, 1).records
    if not got or got[0].id != record_id:
        raise PageError(404, f"no log line {record_id} in {env} (gone with retention?)")
    return got[0]


def neighbours(
    state: ApiState, env: str, record: LogRecord
) -> tuple[list[LogRecord], list[LogRecord]]:
    """The NEIGHBOURS lines before `record` and after it from its replica, oldest first."""
    replica = record.labels.replica
    if replica is None:
        return [], []
    same = LogQuery(replicas=(replica,), until=record.ts, limit=NEIGHBOURS + 20)
    before = [r for r in state.backend.logs(env, same) if r.id < record.id][:NEIGHBOURS]
    after = state.backend.log_tail(env, LogQuery(replicas=(replica,)), record.id, NEIGHBOURS)
    return list(reversed(before)), after.records


@router.get("/environments/{env}/logs/lines/{record_id}")
async def log_line(request: Request, env: str, record_id: int, visit: CurrentVisit) -> Response:
    state = api_state(request)

    def read() -> dict[str, Any]:
        _known(state, env)
        record = _record(state, env, record_id)
        before, after = neighbours(state, env, record)
        return {"line": record, "before": before, "after": after}

    facts = await run_in_threadpool(read)
    base = await run_in_threadpool(base_context, state, visit, "logs")
    back = request.query_params.get("back", "")
    return page(
        "log_line.html",
        **base,
        env_name=env,
        back=back if back.startswith("/") and not back.startswith("//") else "",
        **facts,
    )


def line_message(env: str, record: LogRecord) -> str:
    """One record as an SSE `line` event: its rendered list item, one `data:` per line of HTML
    (htmx joins them), `id:` its id so a reconnecting browser resumes after it."""
    html = render("fragments/log_line.html", env_name=env, r=record)
    data = "".join(f"data: {part}\n" for part in html.strip().splitlines())
    return f"event: line\nid: {record.id}\n{data}\n"


async def tail_lines(
    state: ApiState,
    env: str,
    query: LogQuery,
    position: int,
    still_signed_in: Callable[[], bool],
) -> AsyncIterator[str]:
    """The records after `position` that match, as they come, until the server stops or the
    session ends (looked at each keepalive period)."""
    yield "retry: 2000\n\n"
    quiet = 0.0
    while True:
        got = await run_in_threadpool(state.backend.log_tail, env, query, position, TAIL_BATCH)
        for r in got.records:
            yield line_message(env, r)
        position = got.position
        if state.stopping.is_set():
            return
        if len(got.records) == TAIL_BATCH:
            continue
        if got.records:
            quiet = 0.0
        elif quiet >= state.keepalive:
            if not await run_in_threadpool(still_signed_in):
                return
            yield ": keepalive\n\n"
            quiet = 0.0
        await anyio.sleep(state.events_poll)
        quiet += state.events_poll


@router.get("/environments/{env}/logs/live")
async def logs_live(
    request: Request,
    env: str,
    _visit: CurrentVisit,
    after: int | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    state = api_state(request)
    await run_in_threadpool(_known, state, env)
    try:
        query = LogForm.of(request.query_params).query(limit=TAIL_BATCH, now=time.time())
    except LogQueryError as e:
        raise PageError(422, str(e)) from None
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    if start is None:
        start = (await run_in_threadpool(state.backend.log_tail, env, query, None, 0)).position
    sid = request.cookies.get(SESSION_COOKIE)

    def still_signed_in() -> bool:
        return resume_session(state.db, sid) is not None

    return StreamingResponse(
        tail_lines(state, env, query, start, still_signed_in),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
