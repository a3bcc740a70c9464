"""The pipelines pages (issue 11 item 4): an environment's pipelines (paged), a pipeline's
stage/needs graph and jobs, a job's page (its log streaming live while it runs, ANSI colours
as HTML, artifacts, JUnit results), and cancelling a running pipeline (confirm, then act).
Retrying a job and playing a manual job: pages_job_actions.py (the buttons are drawn here)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from conveyor.app.ci_views import JobView, PipelineSummary, PipelineView
from conveyor.app.server_views import ActionResult
from conveyor.app.web_sessions import resume_session
from conveyor.errors import ActionRefused, ConveyorError, NotFound, ServerError
from conveyor.model.web_session import SESSION_COOKIE
from conveyor.server.api import ApiState, act
from conveyor.server.dashboard.ansi import AnsiHtml, ansi_to_html
from conveyor.server.dashboard.auth import CurrentVisit, Visit, acting_visit, api_state
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.flash import FLASH_COOKIE, Flash, give_flash, take_flash
from conveyor.server.dashboard.job_rerun import RerunAction, rerun_actions
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.pipeline_graph import GraphInput, Layout, layout
from conveyor.server.dashboard.render import SECURITY_HEADERS, page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50  # pipelines per page of the list
FINISHED = frozenset(
    {"success", "failed", "canceled", "skipped", "manual", "interrupted", "timed_out"}
)
LOG_LIMIT = 2_000_000  # characters of a log the page shows; the rest is in `conveyor ci logs`


def _read(do: Callable[[], Any]) -> Any:
    try:
        return do()
    except NotFound as e:
        raise PageError(404, str(e)) from None


@router.get("/environments/{env}/pipelines")
def pipelines(
    request: Request, env: str, visit: CurrentVisit, before: int | None = None
) -> Response:
    state = api_state(request)
    rows: list[PipelineSummary] = _read(
        lambda: state.backend.pipeline_page(env, before, PAGE_SIZE + 1)
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return page(
        "pipelines.html",
        **base_context(state, visit, f"env:{env}"),
        env_name=env,
        pipelines=rows,
        before=before,
        older=rows[-1].id if more and rows else None,
    )


@dataclass(frozen=True)
class PipelinePage:
    env: str
    pipeline: PipelineView
    graph: Layout
    cancellable: bool
    actions: Mapping[int, RerunAction] = field(default_factory=dict)  # job id -> retry/play

    @property
    def running(self) -> bool:
        return self.pipeline.status in ("running", "created", "pending")


def pipeline_page(state: ApiState, env: str, pid: int) -> PipelinePage:
    view: PipelineView = _read(lambda: state.backend.pipeline(env, pid))
    try:
        config = state.backend.pipeline_graph(env, view.sha)
    except ConveyorError:
        config = None
    jobs = [GraphInput(j.id, j.name, j.stage, j.status, j.duration) for j in view.jobs]
    running = view.status in ("running", "created")
    needs: dict[str, list[str] | None] = {}
    stage_order: list[str] = []
    if config is not None:
        recorded = {j.name for j in view.jobs}
        for stage in config.stages:
            stage_order.append(stage.name)
            for g in stage.jobs:
                needs[g.name] = g.needs
                if running and g.name not in recorded:
                    # the engine records a job when it starts: the rest are still to come
                    jobs.append(GraphInput(0, g.name, stage.name, "created", None))
    return PipelinePage(env, view, layout(jobs, needs, stage_order), running, rerun_actions(view))


@router.get("/environments/{env}/pipelines/{pid}")
async def pipeline(request: Request, env: str, pid: int, visit: CurrentVisit) -> Response:
    state = api_state(request)
    p = await run_in_threadpool(pipeline_page, state, env, pid)
    base = await run_in_threadpool(base_context, state, visit, f"env:{env}")
    response = page("pipeline.html", **base, p=p, flash=take_flash(request))
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


@router.get("/fragments/environments/{env}/pipelines/{pid}")
def pipeline_fragment(request: Request, env: str, pid: int, visit: CurrentVisit) -> Response:
    p = pipeline_page(api_state(request), env, pid)
    return page("fragments/pipeline.html", visit=visit, p=p)


# a job ----------------------------------------------------------------------------------------


def _job(view: PipelineView, job: int) -> JobView:
    for j in view.jobs:
        if j.id == job:
            return j
    raise PageError(404, f"pipeline #{view.id} has no job {job}")


@router.get("/environments/{env}/pipelines/{pid}/jobs/{job}")
def job_page(request: Request, env: str, pid: int, job: int, visit: CurrentVisit) -> Response:
    state = api_state(request)
    view: PipelineView = _read(lambda: state.backend.pipeline(env, pid))
    j = _job(view, job)
    try:
        text = state.backend.job_log(env, job).text
    except NotFound:
        text = ""  # not started yet: no log file
    shown = text
    if j.status not in FINISHED:
        shown = text[: text.rfind("\n") + 1]  # whole lines: the stream sends the rest
    truncated = len(shown) > LOG_LIMIT
    return page(
        "job.html",
        **base_context(state, visit, f"env:{env}"),
        env_name=env,
        pipeline=view,
        job=j,
        log_html=ansi_to_html(shown[-LOG_LIMIT:]),
        truncated=truncated,
        live=j.status not in FINISHED,
        offset=len(shown),
        action=rerun_actions(view).get(j.id),
    )


def sse(event: str, data: str, event_id: int | None = None) -> str:
    """One server-sent event; `data` may span lines (each gets its own `data:` field). Its
    `id` (a log offset) is where a reconnecting browser resumes (Last-Event-ID)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"


async def log_stream(
    state: ApiState,
    env: str,
    pid: int,
    job: int,
    offset: int,
    still_signed_in: Callable[[], bool] = lambda: True,
) -> AsyncIterator[str]:
    """The job's new whole lines as HTML (`log` events) while it runs, then what is left and
    an `end` event with its status. The log file is masked by the engine as it is written, so
    nothing here sees a masked value."""
    converter = AnsiHtml()
    position = offset
    yield "retry: 2000\n\n"
    quiet = 0.0
    while True:
        view: PipelineView = await run_in_threadpool(state.backend.pipeline, env, pid)
        status = _job(view, job).status
        # a job that never ran in a finished pipeline (blocked, canceled before) ends too
        done = status in FINISHED or view.status not in ("running", "created")
        try:
            text = (await run_in_threadpool(state.backend.job_log, env, job)).text
        except NotFound:
            text = ""
        end = len(text) if done else text.rfind("\n") + 1
        if end > position:
            html = converter.feed(text[position:end])
            position = end
            yield sse("log", json.dumps({"html": html, "offset": position}), position)
            quiet = 0.0
        if done:
            yield sse("end", json.dumps({"html": converter.close(), "status": status}))
            return
        if state.stopping.is_set():
            return
        if quiet >= state.keepalive:
            # a signed-out or expired session stops here (as /live does)
            if not await run_in_threadpool(still_signed_in):
                return
            yield ": keepalive\n\n"
            quiet = 0.0
        await anyio.sleep(state.events_poll)
        quiet += state.events_poll


@router.get("/environments/{env}/pipelines/{pid}/jobs/{job}/log")
def job_log_stream(
    request: Request,
    env: str,
    pid: int,
    job: int,
    _visit: CurrentVisit,
    offset: int = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    state = api_state(request)
    if last_event_id and last_event_id.isdigit():
        offset = int(last_event_id)  # a reconnect: after what it already appended
    _job(_read(lambda: state.backend.pipeline(env, pid)), job)  # 404 before the stream starts
    sid = request.cookies.get(SESSION_COOKIE)

    def still_signed_in() -> bool:
        return resume_session(state.db, sid) is not None

    return StreamingResponse(
        log_stream(state, env, pid, job, max(0, offset), still_signed_in),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/environments/{env}/pipelines/{pid}/jobs/{job}/artifacts/{path:path}")
def artifact(
    request: Request, env: str, pid: int, job: int, path: str, _visit: CurrentVisit
) -> Response:
    """One file of a job's artifacts, as a download (viewer role: any signed-in user). Sent
    as an attachment of an opaque type, so a kept HTML file never runs on this origin."""
    state = api_state(request)
    _job(_read(lambda: state.backend.pipeline(env, pid)), job)
    blob: Path = _read(lambda: state.backend.artifact_file(env, job, path))
    return FileResponse(
        blob,
        media_type="application/octet-stream",
        filename=path.rsplit("/", 1)[-1],
        headers={**SECURITY_HEADERS, "Content-Security-Policy": "sandbox; default-src 'none'"},
    )


# cancel --------------------------------------------------------------------------------------


def _forbidden(visit: Visit) -> PageError:
    return PageError(
        403,
        f"Cancelling a pipeline needs the deployer role; you signed in as "
        f"{visit.session.name!r}, a {visit.session.role}.",
    )


@router.get("/environments/{env}/pipelines/{pid}/cancel")
def confirm_cancel(request: Request, env: str, pid: int, visit: CurrentVisit) -> Response:
    if not visit.can_act:
        raise _forbidden(visit)
    state = api_state(request)
    view: PipelineView = _read(lambda: state.backend.pipeline(env, pid))
    return page(
        "confirm_cancel.html", **base_context(state, visit, f"env:{env}"), env_name=env, p=view
    )


@router.post("/environments/{env}/pipelines/{pid}/cancel")
async def cancel(request: Request, env: str, pid: int) -> Response:
    visit, _form = await acting_visit(request)  # a session, then its CSRF token
    state = api_state(request)
    p = visit.principal

    def do() -> ActionResult:
        return state.backend.cancel_pipeline(env, pid, p)

    try:
        result = await run_in_threadpool(act, state, p, "cancel", env, {"pipeline": pid}, do)
    except HTTPException as e:  # the role check of `act` (recorded as denied)
        if e.status_code == 403:
            raise _forbidden(visit) from None
        raise PageError(e.status_code, str(e.detail)) from None
    except NotFound as e:
        raise PageError(404, str(e)) from None
    except (ActionRefused, ServerError) as e:
        flash = Flash("refused", f"cancel refused: {e}")
    except Exception as e:  # recorded as failed by `act`
        flash = Flash("failed", f"cancel failed: {type(e).__name__}: {e}")
    else:
        flash = Flash("ok", result.message)
    response = RedirectResponse(
        f"/environments/{env}/pipelines/{pid}", status_code=303, headers=SECURITY_HEADERS
    )
    give_flash(response, request, flash)
    return response
