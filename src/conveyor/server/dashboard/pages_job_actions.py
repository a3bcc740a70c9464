"""Retry a job and play a manual job from the pipeline and job pages (issue 11 item 4):
a confirmation page, then a POST with the session's CSRF token, done through the API's `act`
(deployer role, audited) as cancelling a pipeline is; back on the pipeline page with what
happened. The job runs in the server's controller, in the background: the page's live region
shows it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from conveyor.app.ci_views import PipelineView
from conveyor.app.server_views import ActionResult
from conveyor.errors import ActionRefused, NotFound, ServerError
from conveyor.server.api import act
from conveyor.server.dashboard.auth import CurrentVisit, Visit, acting_visit, api_state
from conveyor.server.dashboard.errors import PageError
from conveyor.server.dashboard.flash import Flash, give_flash
from conveyor.server.dashboard.job_rerun import RerunAction
from conveyor.server.dashboard.pages import base_context
from conveyor.server.dashboard.pages_pipelines import _job, _read
from conveyor.server.dashboard.render import SECURITY_HEADERS, page

router = APIRouter(include_in_schema=False)
VERB = {"retry": "Retrying a job", "play": "Playing a manual job"}


def _forbidden(visit: Visit, kind: RerunAction) -> PageError:
    return PageError(
        403,
        f"{VERB[kind]} needs the deployer role; you signed in as "
        f"{visit.session.name!r}, a {visit.session.role}.",
    )


def _confirm(request: Request, env: str, pid: int, job: int, visit: Visit, kind: RerunAction
             ) -> Response:  # fmt: skip
    if not visit.can_act:
        raise _forbidden(visit, kind)
    state = api_state(request)
    view: PipelineView = _read(lambda: state.backend.pipeline(env, pid))
    return page(
        "confirm_rerun.html",
        **base_context(state, visit, f"env:{env}"),
        env_name=env,
        p=view,
        job=_job(view, job),
        kind=kind,
    )


@router.get("/environments/{env}/pipelines/{pid}/jobs/{job}/retry")
def confirm_retry(request: Request, env: str, pid: int, job: int, visit: CurrentVisit) -> Response:
    return _confirm(request, env, pid, job, visit, "retry")


@router.get("/environments/{env}/pipelines/{pid}/jobs/{job}/play")
def confirm_play(request: Request, env: str, pid: int, job: int, visit: CurrentVisit) -> Response:
    return _confirm(request, env, pid, job, visit, "play")


async def _rerun(request: Request, env: str, pid: int, job: int, kind: RerunAction) -> Response:
    visit, _form = await acting_visit(request)  # a session, then its CSRF token
    state = api_state(request)
    p = visit.principal

    def do() -> ActionResult:
        _job(_read(lambda: state.backend.pipeline(env, pid)), job)  # a job of that pipeline
        if kind == "retry":
            return state.backend.retry_job(env, job, p)
        return state.backend.play_job(env, job, p)

    detail = {"pipeline": pid, "job": job}
    try:
        result = await run_in_threadpool(act, state, p, kind, env, detail, do)
    except HTTPException as e:  # the role check of `act` (recorded as denied)
        if e.status_code == 403:
            raise _forbidden(visit, kind) from None
        raise PageError(e.status_code, str(e.detail)) from None
    except NotFound as e:
        raise PageError(404, str(e)) from None
    except (ActionRefused, ServerError) as e:
        flash = Flash("refused", f"{kind} refused: {e}")
    except PageError:
        raise
    except Exception as e:  # recorded as failed by `act`
        flash = Flash("failed", f"{kind} failed: {type(e).__name__}: {e}")
    else:
        flash = Flash("ok", result.message)
    response = RedirectResponse(
        f"/environments/{env}/pipelines/{pid}", status_code=303, headers=SECURITY_HEADERS
    )
    give_flash(response, request, flash)
    return response


@router.post("/environments/{env}/pipelines/{pid}/jobs/{job}/retry")
async def retry(request: Request, env: str, pid: int, job: int) -> Response:
    return await _rerun(request, env, pid, job, "retry")


@router.post("/environments/{env}/pipelines/{pid}/jobs/{job}/play")
async def play(request: Request, env: str, pid: int, job: int) -> Response:
    return await _rerun(request, env, pid, job, "play")
