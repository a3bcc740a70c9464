"""The server's HTTP API (FastAPI; OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs).

`/healthz` and the webhook routes (`POST /hooks/gitlab|github|generic`, checked with the
webhook secret; `POST /hooks/alertmanager`, checked with the alert receiver's bearer token)
take no API token; every `/api/v1` route takes `Authorization: Bearer TOKEN`:
401 without a valid token, 403 for a role too low. A viewer reads, a deployer also acts on
environments, an admin also manages tokens and reads the audit log. Every acting request is
written to the audit log with its outcome, refused ones (403, 404, 409) included.

The routes only authenticate, audit and translate: what there is to read and do comes from a
`ServerBackend` (server/backend.py), kept with the database in `app.state.conveyor`.
Reference: docs/server.md.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Annotated, Any, TypeVar, cast

import anyio
import structlog
from fastapi import (
    APIRouter,
    Body,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    Security,
)
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from conveyor.app.access import (
    ServerDatabase,
    audit_log,
    authenticate,
    create_token,
    list_tokens,
    record,
    revoke_token,
)
from conveyor.app.alerts import MAX_BODY as ALERTS_MAX_BODY
from conveyor.app.alerts import AlertReceiver
from conveyor.app.ci_views import JobLog, JobView, PipelineSummary
from conveyor.app.dora import DEFAULT_SINCE, DoraView, parse_window
from conveyor.app.flux_hook import MAX_BODY as FLUX_MAX_BODY
from conveyor.app.flux_hook import FluxReceiver
from conveyor.app.hooks import (
    HOOK_SOURCES,
    MAX_BODY,
    HookRejected,
    HookSource,
    receive_hook,
)
from conveyor.app.logs import log_query
from conveyor.app.server_views import (
    ActionResult,
    AlertsReceived,
    AuditLog,
    DiffView,
    EnvironmentDetail,
    EnvironmentSummary,
    FluxAnswer,
    HookAnswer,
    TokenCreated,
    TokenList,
    TokenView,
)
from conveyor.app.views import ReleaseView, RolloutView, TimelineView
from conveyor.errors import (
    ActionRefused,
    AlertsError,
    LogQueryError,
    NotFound,
    ServerError,
    TokenNameTaken,
)
from conveyor.model.access import Principal, Role, role_allows
from conveyor.model.alerts import AlertsView
from conveyor.model.events import Event
from conveyor.model.logs import LogQuery, LogRecord
from conveyor.server.backend import ServerBackend

API = "/api/v1"
T = TypeVar("T")
log = structlog.get_logger("conveyor.server")


@dataclass
class ApiState:
    backend: ServerBackend
    db: ServerDatabase
    hook_secret: str | None
    events_poll: float  # seconds between looks for new events in an open stream
    keepalive: float  # seconds of silence after which a stream sends a comment line
    stopping: threading.Event = field(default_factory=threading.Event)
    alerts: AlertReceiver | None = None  # Alertmanager's deliveries (None: the route is off)
    alerts_view: Callable[[float], AlertsView] | None = None  # GET /alerts (window seconds)
    flux: FluxReceiver | None = None  # Flux's notification events (None: the route is off)


def create_app(
    backend: ServerBackend,
    db: ServerDatabase,
    *,
    hook_secret: str | None,
    events_poll: float = 0.5,
    keepalive: float = 15.0,
    alerts: AlertReceiver | None = None,
    alerts_view: Callable[[float], AlertsView] | None = None,
    flux: FluxReceiver | None = None,
) -> FastAPI:
    """The API over `backend`, with tokens and audit in `db`. `hook_secret` None turns the
    webhook routes off (they answer 401); `alerts` None turns Alertmanager's off (404).
    `state_of(app).stopping` ends the open event streams: set it when the server shuts down."""
    app = FastAPI(
        title="Conveyor server",
        version=version("conveyor"),
        summary="Git is the source of truth: environments, releases, rollouts, pipelines.",
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
    )
    app.state.conveyor = ApiState(
        backend,
        db,
        hook_secret,
        events_poll,
        keepalive,
        alerts=alerts,
        alerts_view=alerts_view,
        flux=flux,
    )
    app.add_exception_handler(ServerError, _server_error)  # type: ignore[arg-type]  # Starlette types handlers loosely
    app.include_router(open_routes)
    app.include_router(read_routes, prefix=API)
    app.include_router(action_routes, prefix=API)
    app.include_router(admin_routes, prefix=API)
    return app


def state_of(app: FastAPI) -> ApiState:
    return cast(ApiState, app.state.conveyor)


def _state(request: Request) -> ApiState:
    return cast(ApiState, request.app.state.conveyor)


State = Annotated[ApiState, Depends(_state)]


async def _server_error(_request: Request, e: ServerError) -> JSONResponse:
    status = 404 if isinstance(e, NotFound) else 400
    if isinstance(e, ActionRefused | TokenNameTaken):
        status = 409
    return JSONResponse({"detail": str(e)}, status_code=status)


# authentication and roles ------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API token made by `conveyor token create`.")


def _caller(
    state: State, creds: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> Principal:
    if creds is None:
        raise HTTPException(
            401,
            "this route needs an API token: Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
    p = authenticate(state.db, creds.credentials)
    if p is None:
        raise HTTPException(
            401,
            "the API token is not valid (unknown or revoked)",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return p


def _needs(role: Role) -> Callable[[Principal], Principal]:
    def check(p: Annotated[Principal, Depends(_caller)]) -> Principal:
        if not role_allows(p.role, role):
            raise HTTPException(403, _too_low(p, role))
        return p

    return check


def _too_low(p: Principal, role: Role) -> str:
    return f"this needs the {role} role; token {p.name!r} has the {p.role} role"


# Acting routes take any valid token and check the role themselves, to audit a refusal.
Caller = Annotated[Principal, Depends(_caller)]
Viewer = Annotated[Principal, Depends(_needs("viewer"))]
Admin = Annotated[Principal, Depends(_needs("admin"))]


def _allow(
    state: ApiState, p: Principal, role: Role, action: str, target: str, detail: dict[str, Any]
) -> None:
    if not role_allows(p.role, role):
        record(state.db, p, action, target, "denied", detail)
        raise HTTPException(403, _too_low(p, role))


def _act(
    state: ApiState,
    p: Principal,
    action: str,
    env: str,
    detail: dict[str, Any],
    do: Callable[[], T],
) -> T:
    """Run an action on an environment for `p`, audited whatever its outcome. Acting takes a
    deployer (or admin) everywhere; a protected environment keeps that bar too."""
    _allow(state, p, "deployer", action, env, detail)
    try:
        result = do()
    except ServerError as e:
        record(state.db, p, action, env, "refused", detail | {"reason": str(e)})
        raise
    except Exception as e:
        record(state.db, p, action, env, "failed", detail | {"error": f"{type(e).__name__}: {e}"})
        raise
    record(state.db, p, action, env, "ok", detail)
    return result


def act(
    state: ApiState,
    p: Principal,
    action: str,
    env: str,
    detail: dict[str, Any],
    do: Callable[[], T],
) -> T:
    """`_act` for the server's other entry points (the dashboard's action forms): the same role
    check and audit record as the API's own action routes. Raises HTTPException(403) for a role
    too low and the backend's ServerError (NotFound, ActionRefused) as it is."""
    return _act(state, p, action, env, detail, do)


# no token: health and webhooks -------------------------------------------------------------------

open_routes = APIRouter()


@open_routes.get("/healthz", tags=["server"])
def healthz() -> dict[str, str]:
    """The server answers (no token needed)."""
    return {"status": "ok"}


def _hook_route(source: HookSource) -> None:
    async def receive(request: Request) -> JSONResponse:
        state = _state(request)
        try:
            body = await _read_body(request)
            receipt = await run_in_threadpool(
                receive_hook, state.db, source, request.headers, body, state.hook_secret
            )
        except HookRejected as e:
            return JSONResponse({"detail": e.reason}, status_code=e.status)
        d = receipt.delivery
        if receipt.duplicate:
            answer = HookAnswer(
                source=source, delivery_id=d.delivery_id, duplicate=True, handed_over=False
            )
            return JSONResponse(answer.model_dump(), status_code=200)
        # Persisted already: whatever the controller does now, the delivery is not lost.
        handed = True
        try:
            await run_in_threadpool(state.backend.hook_received, d)
        except Exception:
            handed = False
            log.exception("webhook delivery left pending", source=source, id=d.delivery_id)
        answer = HookAnswer(
            source=source, delivery_id=d.delivery_id, duplicate=False, handed_over=handed
        )
        return JSONResponse(answer.model_dump(), status_code=202)

    open_routes.add_api_route(
        f"/hooks/{source}",
        receive,
        methods=["POST"],
        tags=["webhooks"],
        summary=f"Receive a {source} webhook delivery",
        response_model=HookAnswer,
        status_code=202,
        responses={
            200: {"description": "A duplicate delivery: nothing was done again"},
            401: {"description": "Wrong or missing secret: nothing was persisted"},
        },
    )


for _source in HOOK_SOURCES:
    _hook_route(_source)


async def _read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refused (413) past `limit` bytes without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HookRejected(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HookRejected(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@open_routes.post(
    "/hooks/alertmanager",
    tags=["webhooks"],
    summary="Receive an Alertmanager webhook delivery",
    response_model=AlertsReceived,
    responses={
        401: {"description": "Wrong or missing bearer token: nothing was told"},
        404: {"description": "This server has no alert receiver"},
    },
)
async def alertmanager_hook(request: Request) -> JSONResponse:
    """Each alert that started firing or resolved becomes an `alert.firing` or
    `alert.resolved` event, notified like every other (docs/alerts.md)."""
    state = _state(request)
    if state.alerts is None:
        return JSONResponse({"detail": "this server has no alert receiver"}, status_code=404)
    try:
        body = await _read_body(request, ALERTS_MAX_BODY)
        received = await run_in_threadpool(
            state.alerts.receive, request.headers.get("authorization"), body
        )
    except HookRejected as e:
        return JSONResponse({"detail": e.reason}, status_code=e.status)
    answer = AlertsReceived(alerts=received.alerts, told=received.told)
    return JSONResponse(answer.model_dump(), status_code=200)


@open_routes.post(
    "/hooks/flux",
    tags=["webhooks"],
    summary="Receive a Flux notification event (a generic-hmac Provider)",
    response_model=FluxAnswer,
    responses={
        401: {"description": "Wrong or missing X-Signature: nothing was recorded"},
        404: {"description": "This server takes no Flux events"},
    },
)
async def flux_hook(request: Request) -> JSONResponse:
    """Flux's event about an environment's Kustomization becomes a `flux.reconciled` or
    `flux.failed` event of that environment (docs/flux.md)."""
    state = _state(request)
    if state.flux is None:
        return JSONResponse({"detail": "this server takes no Flux events"}, status_code=404)
    try:
        body = await _read_body(request, FLUX_MAX_BODY)
        received = await run_in_threadpool(state.flux.receive, request.headers, body)
    except HookRejected as e:
        return JSONResponse({"detail": e.reason}, status_code=e.status)
    answer = FluxAnswer(kind=received.kind, environment=received.environment)
    return JSONResponse(answer.model_dump(), status_code=200)


# reading (viewer) --------------------------------------------------------------------------------

read_routes = APIRouter()


@read_routes.get("/environments", tags=["environments"])
def environments(state: State, _p: Viewer) -> list[EnvironmentSummary]:
    return state.backend.environments()


@read_routes.get("/environments/{env}", tags=["environments"])
def environment(env: str, state: State, _p: Viewer) -> EnvironmentDetail:
    return state.backend.environment(env)


@read_routes.get("/environments/{env}/releases", tags=["environments"])
def releases(env: str, state: State, _p: Viewer) -> list[ReleaseView]:
    """Newest first."""
    return state.backend.releases(env)


@read_routes.get("/environments/{env}/rollouts", tags=["environments"])
def rollouts(env: str, state: State, _p: Viewer) -> list[RolloutView]:
    """Newest first."""
    return state.backend.rollouts(env)


@read_routes.get("/environments/{env}/pipelines", tags=["pipelines"])
def pipelines(env: str, state: State, _p: Viewer) -> list[PipelineSummary]:
    """Newest first."""
    return state.backend.pipelines(env)


@read_routes.get("/environments/{env}/pipelines/{pipeline_id}/jobs", tags=["pipelines"])
def jobs(env: str, pipeline_id: int, state: State, _p: Viewer) -> list[JobView]:
    return state.backend.jobs(env, pipeline_id)


@read_routes.get("/environments/{env}/jobs/{job_id}/log", tags=["pipelines"])
def job_log(env: str, job_id: int, state: State, _p: Viewer) -> JobLog:
    return state.backend.job_log(env, job_id)


@read_routes.get("/environments/{env}/timeline", tags=["environments"])
def timeline(
    env: str, state: State, _p: Viewer, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[TimelineView]:
    """Commit → pipeline → release → rollout → verdict, one entry per commit the environment
    ran a pipeline for or released (the newest `limit`), newest first."""
    return state.backend.timeline(env, limit)


@read_routes.get("/alerts", tags=["alerts"])
def alerts(
    state: State, _p: Viewer, window: Annotated[float, Query(gt=0, le=30 * 86400)] = 3600
) -> AlertsView:
    """Alerts firing now in the server's Alertmanager, then the ones resolved over the last
    `window` seconds (from the server's timeline); `conveyor alerts --server` shows them."""
    if state.alerts_view is None:
        raise HTTPException(404, "this server has no Alertmanager to ask")
    try:
        return state.alerts_view(window)
    except AlertsError as e:
        raise HTTPException(503, str(e)) from e


@read_routes.get("/environments/{env}/dora", tags=["environments"])
def dora(env: str, state: State, _p: Viewer, since: str = DEFAULT_SINCE) -> DoraView:
    """DORA metrics from the environment's records over `since` (`30d`, `2w`, `12h`):
    deployment frequency, lead time for changes, change failure rate, time to restore."""
    try:
        parse_window(since)
    except ValueError as e:
        raise HTTPException(422, f"since: {e}") from None
    return state.backend.dora(env, since)


@read_routes.get("/environments/{env}/diff", tags=["environments"])
def diff(env: str, state: State, _p: Viewer) -> DiffView:
    """What git says against what runs, per service."""
    return state.backend.diff(env)


@read_routes.get("/events", tags=["events"])
def events(
    state: State,
    _p: Viewer,
    after: Annotated[int | None, Query(description="Only events with a larger id.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Event]:
    """Recorded events, oldest first."""
    return state.backend.events(after, limit)


@read_routes.get(
    "/events/stream",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def event_stream(
    state: State,
    _p: Viewer,
    after: Annotated[int | None, Query(description="Start after this event id.")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: each recorded event once, `id:` its id and `data:` its JSON, oldest
    first from the start (or after `?after=`, or after the `Last-Event-ID` a reconnecting
    client sends), then live."""
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    return StreamingResponse(
        _sse(state, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(state: ApiState, after: int | None) -> AsyncIterator[str]:
    """Events as server-sent events until the client goes away (Starlette cancels this) or
    the server stops. Polls the backend: events are recorded in a database, not pushed."""
    position = after
    quiet = 0.0
    yield "retry: 2000\n\n"
    while True:
        batch = await run_in_threadpool(state.backend.events, position, 100)
        for e in batch:
            position = e.id
            yield f"id: {e.id}\ndata: {e.model_dump_json()}\n\n"
        if state.stopping.is_set():  # the batch read after the stop was sent: done
            return
        if batch:
            quiet = 0.0
            continue
        if quiet >= state.keepalive:  # a comment line keeps proxies from closing the stream
            yield ": keepalive\n\n"
            quiet = 0.0
        await anyio.sleep(state.events_poll)
        quiet += state.events_poll


# logs (viewer) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilters:
    """The filters of `conveyor logs`, as query parameters (repeat a list parameter:
    `?service=web&service=worker`)."""

    service: list[str]
    grep: str | None
    level: str | None
    since: str | None
    until: str | None
    release: int | None
    field: list[str]
    replica: list[str]
    stream: list[str]
    host: list[str]

    def query(self, limit: int) -> LogQuery:
        try:
            return log_query(
                self.service,
                grep=self.grep,
                level=self.level,
                since=self.since,
                until=self.until,
                release=self.release,
                fields=self.field,
                replicas=self.replica,
                streams=self.stream,
                limit=limit,
                hosts=self.host,
            )
        except LogQueryError as e:
            raise HTTPException(422, str(e)) from None


def _log_filters(
    service: Annotated[list[str], Query(description="Only these services.")] = [],  # noqa: B006 — FastAPI copies it
    grep: Annotated[
        str | None, Query(description="Words the line holds, all of them (`word*`: a prefix).")
    ] = None,
    level: Annotated[str | None, Query(description="This level and above.")] = None,
    since: Annotated[
        str | None, Query(description="`10m`, `3d` (before now), ISO 8601, or UNIX seconds.")
    ] = None,
    until: Annotated[str | None, Query(description="As `since`.")] = None,
    release: int | None = None,
    field: Annotated[
        list[str], Query(description="KEY=VALUE of a parsed field; repeat for several.")
    ] = [],  # noqa: B006
    replica: Annotated[list[str], Query()] = [],  # noqa: B006
    stream: Annotated[list[str], Query(description="stdout or stderr.")] = [],  # noqa: B006
    host: Annotated[list[str], Query(description="Fleet hosts the lines ran on.")] = [],  # noqa: B006
) -> LogFilters:
    return LogFilters(service, grep, level, since, until, release, field, replica, stream, host)


Filters = Annotated[LogFilters, Depends(_log_filters)]


@read_routes.get("/environments/{env}/logs", tags=["logs"])
def env_logs(
    env: str,
    state: State,
    _p: Viewer,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[LogRecord]:
    """The environment's newest log lines that match, newest first: every replica's output
    (replicas gone since included), parsed and labelled (docs/logs.md)."""
    return state.backend.logs(env, filters.query(limit))


@read_routes.get(
    "/environments/{env}/logs/stream",
    tags=["logs"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def env_log_stream(
    env: str,
    state: State,
    _p: Viewer,
    filters: Filters,
    backlog: Annotated[
        int, Query(ge=0, le=10_000, description="Send the newest N matching lines first.")
    ] = 0,
    after: Annotated[int | None, Query(description="Start after this record id.")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """A live tail as server-sent events: each matching log record once, `id:` its id and
    `data:` its JSON, from now (after `backlog` newest ones), or after `?after=` or the
    `Last-Event-ID` a reconnecting client sends; across replicas and releases."""
    query = filters.query(max(backlog, 1))
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    first: list[LogRecord] = []
    if start is None:
        # Checked before streaming, so an unknown environment is a 404, not a broken stream.
        start = (await run_in_threadpool(state.backend.log_tail, env, query, None, 0)).position
        if backlog:
            found = await run_in_threadpool(state.backend.logs, env, query)
            first = list(reversed(found))
            start = max([start, *(r.id for r in first)])
    else:
        await run_in_threadpool(state.backend.log_tail, env, query, start, 0)
    return StreamingResponse(
        _log_sse(state, env, query, start, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _log_sse(
    state: ApiState, env: str, query: LogQuery, position: int, first: list[LogRecord]
) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    for r in first:
        yield f"id: {r.id}\ndata: {r.model_dump_json()}\n\n"
    quiet = 0.0
    while True:
        page = await run_in_threadpool(state.backend.log_tail, env, query, position, 500)
        for r in page.records:
            yield f"id: {r.id}\ndata: {r.model_dump_json()}\n\n"
        position = page.position
        if state.stopping.is_set():
            return
        if page.records:
            quiet = 0.0
            continue
        if quiet >= state.keepalive:
            yield ": keepalive\n\n"
            quiet = 0.0
        await anyio.sleep(state.events_poll)
        quiet += state.events_poll


# acting (deployer) -------------------------------------------------------------------------------

action_routes = APIRouter()


class PromoteRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="The environment whose release to promote.")


class RollbackRequest(BaseModel):
    to_release: int | None = Field(None, description="Default: the previous release.")


class ApproveRequest(BaseModel):
    release: int


@action_routes.post("/environments/{env}/promote", tags=["actions"])
def promote(env: str, body: PromoteRequest, state: State, p: Caller) -> ActionResult:
    """Promote the release of environment `from` into `env`, through its gates."""
    src = body.from_
    return _act(state, p, "promote", env, {"from": src}, lambda: state.backend.promote(env, src, p))


@action_routes.post("/environments/{env}/rollback", tags=["actions"])
def rollback(
    env: str, state: State, p: Caller, body: Annotated[RollbackRequest | None, Body()] = None
) -> ActionResult:
    """Roll back at once, to `to_release` (default: the previous release)."""
    to = body.to_release if body else None
    return _act(
        state, p, "rollback", env, {"to_release": to}, lambda: state.backend.rollback(env, to, p)
    )


@action_routes.post("/environments/{env}/suspend", tags=["actions"])
def suspend(env: str, state: State, p: Caller) -> ActionResult:
    """Stop deploying and correcting drift until resumed."""
    return _act(state, p, "suspend", env, {}, lambda: state.backend.suspend(env, p))


@action_routes.post("/environments/{env}/resume", tags=["actions"])
def resume(env: str, state: State, p: Caller) -> ActionResult:
    return _act(state, p, "resume", env, {}, lambda: state.backend.resume(env, p))


@action_routes.post("/environments/{env}/approve", tags=["actions"])
def approve(env: str, body: ApproveRequest, state: State, p: Caller) -> ActionResult:
    """Approve promoting `release` into `env` (a promotion gate)."""
    n = body.release
    return _act(state, p, "approve", env, {"release": n}, lambda: state.backend.approve(env, n, p))


@action_routes.post("/environments/{env}/pipelines/{pipeline_id}/cancel", tags=["actions"])
def cancel_pipeline(env: str, pipeline_id: int, state: State, p: Caller) -> ActionResult:
    """Cancel a running pipeline (its running jobs are stopped, the others never start)."""
    return _act(
        state,
        p,
        "cancel",
        env,
        {"pipeline": pipeline_id},
        lambda: state.backend.cancel_pipeline(env, pipeline_id, p),
    )


def _job_of(state: ApiState, env: str, pipeline_id: int, job: int) -> None:
    """404 unless `job` is a job of pipeline `pipeline_id` of `env`."""
    view = state.backend.pipeline(env, pipeline_id)
    if all(j.id != job for j in view.jobs):
        raise NotFound(f"{env}: pipeline {pipeline_id} has no job {job}")


@action_routes.post(
    "/environments/{env}/pipelines/{pipeline_id}/jobs/{job_id}/retry", tags=["actions"]
)
def retry_job(env: str, pipeline_id: int, job_id: int, state: State, p: Caller) -> ActionResult:
    """Retry a failed or canceled job (GitLab's "Retry"): it runs again as a new attempt with
    the artifacts of the jobs it depends on, then the skipped jobs after it that now can; the
    pipeline's status is recomputed. Answered once started; 409 when it cannot be retried."""

    def do() -> ActionResult:
        _job_of(state, env, pipeline_id, job_id)
        return state.backend.retry_job(env, job_id, p)

    return _act(state, p, "retry", env, {"pipeline": pipeline_id, "job": job_id}, do)


@action_routes.post(
    "/environments/{env}/pipelines/{pipeline_id}/jobs/{job_id}/play", tags=["actions"]
)
def play_job(env: str, pipeline_id: int, job_id: int, state: State, p: Caller) -> ActionResult:
    """Play a manual job not run yet (GitLab's "Play"), then the jobs it unblocks; a pipeline
    that passes lets the environment roll its commit out. 409 when it cannot be played."""

    def do() -> ActionResult:
        _job_of(state, env, pipeline_id, job_id)
        return state.backend.play_job(env, job_id, p)

    return _act(state, p, "play", env, {"pipeline": pipeline_id, "job": job_id}, do)


# administering (admin) ---------------------------------------------------------------------------

admin_routes = APIRouter()


class TokenRequest(BaseModel):
    role: Role
    name: str | None = Field(None, description="Default: `<role>-<n>`.")


@admin_routes.get("/tokens", tags=["tokens"])
def tokens(state: State, _p: Admin, include_revoked: bool = False) -> TokenList:
    """Tokens without their secret."""
    return list_tokens(state.db, include_revoked)


@admin_routes.post("/tokens", tags=["tokens"], status_code=201)
def new_token(body: TokenRequest, state: State, p: Caller) -> TokenCreated:
    """A new token; this answer is the only time it is shown."""
    _allow(state, p, "admin", "token.create", body.name or "", {"role": body.role})
    return create_token(state.db, body.role, body.name, actor=p)


@admin_routes.delete("/tokens/{name}", tags=["tokens"])
def delete_token(name: str, state: State, p: Caller) -> TokenView:
    """Revoke a token: requests with it get 401 from now on."""
    _allow(state, p, "admin", "token.revoke", name, {})
    return revoke_token(state.db, name, actor=p)


@admin_routes.get("/audit", tags=["tokens"])
def audit(
    state: State,
    _p: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(description="Page back from this id.")] = None,
) -> AuditLog:
    """Who did what, newest first."""
    return audit_log(state.db, limit, before)
