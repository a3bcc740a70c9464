"""A client of the Conveyor server's HTTP API (docs/server.md): what `conveyor env`, `diff`,
`promote`, `rollback --env`, `suspend` and `resume` call, so a running server stays the one
writer of its environments.

Every method returns the API's own views (`app.server_views`, `app.views`) and raises a
`ConveyorError` a user can act on: `ServerUnreachable` (nothing answers at the address),
`AccessDenied` (401: no token or one the server does not know; 403: the role the request
needs), `NotFound` (404) and `ActionRefused` (409) with the server's reason, `ApiError` for the
rest. Waiting for what an action started (`wait`) polls the API; the decision is
`action_verdict`, pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from conveyor.app.dora import DoraView
from conveyor.app.server_address import SERVER_VARIABLE, TOKEN_VARIABLE
from conveyor.app.server_views import ActionResult, DiffView, EnvironmentDetail, EnvironmentSummary
from conveyor.app.views import ReleaseView, RolloutView, TimelineView
from conveyor.errors import (
    AccessDenied,
    ActionRefused,
    ApiError,
    ConveyorError,
    NotFound,
    ServerUnreachable,
)
from conveyor.model.access import Role
from conveyor.model.alerts import AlertsView
from conveyor.model.events import Event

API = "/api/v1"
READ_TIMEOUT = 30.0  # seconds: reads answer from the server's records
# An action may answer only once its rollout is done (the server's choice): wait that long.
ACTION_TIMEOUT = 900.0
EVENT_PAGE = 1000  # the API's largest page of events

T = TypeVar("T")


def token_from(token_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The API token: the file's content when a file is given (trailing newline dropped),
    else CONVEYOR_TOKEN, else None."""
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConveyorError(f"{token_file}: cannot read the API token ({e.strerror})") from e
        if not text:
            raise ConveyorError(f"{token_file}: the file is empty (it should hold an API token)")
        return text
    value = environ.get(TOKEN_VARIABLE, "").strip()
    return value or None


class ActionVerdict(BaseModel):
    """How an action the server started ended (or that it has not yet)."""

    ok: bool
    status: str  # the rollout's status, the event kind that told, or "timeout"
    message: str


class ServerClient:
    def __init__(self, http: httpx.Client, url: str, token: str | None) -> None:
        """`http` sends the requests (its base URL is the server, its headers carry the
        token); `url` and `token` are only for the messages."""
        self.http = http
        self.url = url
        self.has_token = token is not None

    @classmethod
    def connect(cls, url: str, token: str | None) -> ServerClient:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConveyorError(
                f"{url}: the server's address is a URL (http://HOST:PORT or https://…)"
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx.Client(base_url=url, headers=headers, timeout=READ_TIMEOUT)
        return cls(http, url, token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # reading (viewer) ------------------------------------------------------------------------

    def environments(self) -> list[EnvironmentSummary]:
        return self._get("/environments", list[EnvironmentSummary])

    def environment(self, env: str) -> EnvironmentDetail:
        return self._get(f"/environments/{_seg(env)}", EnvironmentDetail)

    def diff(self, env: str) -> DiffView:
        return self._get(f"/environments/{_seg(env)}/diff", DiffView)

    def timeline(self, env: str, limit: int = 10) -> list[TimelineView]:
        return self._get(
            f"/environments/{_seg(env)}/timeline", list[TimelineView], params={"limit": limit}
        )

    def alerts(self, window: float) -> AlertsView:
        return self._get("/alerts", AlertsView, params={"window": str(window)})

    def dora(self, env: str, since: str) -> DoraView:
        return self._get(f"/environments/{_seg(env)}/dora", DoraView, params={"since": since})

    def releases(self, env: str) -> list[ReleaseView]:
        return self._get(f"/environments/{_seg(env)}/releases", list[ReleaseView])

    def rollouts(self, env: str) -> list[RolloutView]:
        return self._get(f"/environments/{_seg(env)}/rollouts", list[RolloutView])

    def events(self, after: int | None = None, limit: int = 100) -> list[Event]:
        params: dict[str, int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self._get("/events", list[Event], params)

    def last_event_id(self) -> int:
        """The id of the newest event the server holds (0: none)."""
        last = 0
        while True:
            page = self.events(after=last or None, limit=EVENT_PAGE)
            if page:
                last = page[-1].id
            if len(page) < EVENT_PAGE:
                return last

    # acting (deployer) -----------------------------------------------------------------------

    def promote(self, env: str, source: str) -> ActionResult:
        return self._act(f"/environments/{_seg(env)}/promote", {"from": source})

    def rollback(self, env: str, to_release: int | None = None) -> ActionResult:
        return self._act(f"/environments/{_seg(env)}/rollback", {"to_release": to_release})

    def suspend(self, env: str) -> ActionResult:
        return self._act(f"/environments/{_seg(env)}/suspend", None)

    def resume(self, env: str) -> ActionResult:
        return self._act(f"/environments/{_seg(env)}/resume", None)

    def approve(self, env: str, release: int) -> ActionResult:
        return self._act(f"/environments/{_seg(env)}/approve", {"release": release})

    def wait(
        self,
        result: ActionResult,
        after_event: int,
        timeout: float,
        *,
        poll: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ActionVerdict:
        """Poll until what `result` started has ended: its rollout (when the answer names
        one), else the events after `after_event` about its environment. `timeout` seconds
        at most (then a verdict with status "timeout")."""
        deadline = clock() + timeout
        seen: list[Event] = []
        position = after_event
        while True:
            rollouts = self.rollouts(result.environment) if result.rollout is not None else []
            if result.rollout is None:
                batch = self.events(after=position, limit=EVENT_PAGE)
                seen += batch
                position = batch[-1].id if batch else position
            found = action_verdict(result, rollouts, seen)
            if found is not None:
                return found
            if clock() >= deadline:
                return ActionVerdict(
                    ok=False,
                    status="timeout",
                    message=f"{result.environment}: no outcome after {timeout:g}s; "
                    f"`conveyor env status {result.environment}` shows where it is",
                )
            sleep(poll)

    # the wire ----------------------------------------------------------------------------------

    def _get(self, path: str, shape: type[T], params: Mapping[str, int | str] | None = None) -> T:
        response = self._send("GET", path, "viewer", params=params)
        return self._parse(response, shape)

    def _act(self, path: str, body: dict[str, Any] | None) -> ActionResult:
        response = self._send("POST", path, "deployer", json=body, timeout=ACTION_TIMEOUT)
        return self._parse(response, ActionResult)

    def _send(self, method: str, path: str, role: Role, **kw: Any) -> httpx.Response:
        try:
            response = self.http.request(method, API + path, **kw)
        except httpx.TimeoutException as e:
            raise ApiError(f"the server at {self.url} did not answer in time ({e})") from e
        except httpx.TransportError as e:
            raise ServerUnreachable(
                f"no Conveyor server answers at {self.url} ({e}): is `conveyor server` "
                f"running? The address comes from --server or {SERVER_VARIABLE}"
            ) from e
        if response.status_code >= 400:
            raise self._error(response, role)
        return response

    def _error(self, response: httpx.Response, role: Role) -> ConveyorError:
        status = response.status_code
        detail = _detail(response)
        if status == 401:
            if not self.has_token:
                return AccessDenied(
                    f"the server wants an API token with the {role} role: set "
                    f"{TOKEN_VARIABLE} or pass --token-file FILE (`conveyor token create "
                    f"--role {role}` on the server's host makes one)",
                    401,
                )
            return AccessDenied(
                f"the server refused the API token (401: {detail}); this needs a valid "
                f"token with the {role} role",
                401,
            )
        if status == 403:
            if role in detail:
                return AccessDenied(f"forbidden (403): {detail}", 403)
            return AccessDenied(f"forbidden (403): this needs the {role} role ({detail})", 403)
        if status == 404:
            return NotFound(detail)
        if status == 409:
            return ActionRefused(detail)
        if status >= 500:
            return ApiError(f"the server failed (HTTP {status}): {detail}", status)
        return ApiError(f"the server refused the request (HTTP {status}): {detail}", status)

    def _parse(self, response: httpx.Response, shape: type[T]) -> T:
        try:
            return TypeAdapter(shape).validate_json(response.content)
        except ValidationError as e:
            raise ApiError(
                f"{self.url} did not answer as a Conveyor server of this version: "
                f"{e.error_count()} unexpected field(s) in {response.request.url.path}",
                response.status_code,
            ) from e


def action_verdict(
    result: ActionResult, rollouts: Sequence[RolloutView], events: Sequence[Event]
) -> ActionVerdict | None:
    """Whether what `result` started has ended: the rollout it names (from `rollouts`), else
    the first event after the action that tells how its environment's move ended (promotion,
    or a rollout to the release it names). None: not yet."""
    env = result.environment
    if result.rollout is not None:
        for r in rollouts:
            if r.id == result.rollout and r.status != "running":
                ok = r.status == "succeeded"
                why = f": {r.error}" if r.error and not ok else ""
                return ActionVerdict(
                    ok=ok,
                    status=r.status,
                    message=f"{env}: rollout {r.id} to release {r.to_release} {r.status}{why}",
                )
        return None
    for e in events:
        if e.subject.environment != env:
            continue
        kind = _ENDINGS.get(e.kind)
        if kind is None:
            continue
        other_release = result.release is not None and e.subject.release != result.release
        if e.kind.startswith("rollout.") and other_release:
            continue
        return ActionVerdict(ok=kind == "ok", status=e.kind, message=e.message)
    return None


_ENDINGS: dict[str, Literal["ok", "failed"]] = {
    "promotion.succeeded": "ok",
    "promotion.failed": "failed",
    "rollout.succeeded": "ok",
    "rollout.failed": "failed",
    "rollout.rolled_back": "failed",
    "rollout.paused": "failed",
}


def _seg(name: str) -> str:
    """One path segment: an environment name never holds `/` or `?`, but a typo must not
    reach another route."""
    return quote(name, safe="")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # a 422: FastAPI lists what did not match
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(body)[:300]
