"""STAND-IN for `gitops/hooks.py` of branch gitops-sources, which was not merged when the API
was written. It has the shapes that branch promises (`HookDelivery`, `HookRejected(status,
reason)`, `parse_gitlab/parse_github/parse_generic(headers, body, secret)`) and only the
checks the API's tests need: the secret (GitLab's token, an HMAC-SHA256 of the body for GitHub
and the generic hook, both compared in constant time), a JSON body, and the push fields. When
gitops-sources merges, `app/hooks.py` imports from `conveyor.gitops.hooks` instead and this
file is deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.model.frozen import Frozen


class HookDelivery(Frozen):
    source: str  # gitlab | github | generic
    delivery_id: str
    event: str  # push | tag_push
    ref: str | None
    after_sha: str | None
    before_sha: str | None = None
    repository_urls: tuple[str, ...] = ()
    body_sha256: str


class HookRejected(ConveyorError):
    """A delivery the server does not act on: `status` is the HTTP answer (401 wrong or
    missing secret, 400 bad payload, 202 an event that is not a push)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as e:
        raise HookRejected(400, f"the body is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise HookRejected(400, "the body is not a JSON object")
    return data


def _signed(given: str, secret: str, body: bytes, header: str) -> None:
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), want.encode()):
        raise HookRejected(401, f"{header} is missing or does not sign this body")


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_gitlab(headers: Mapping[str, str], body: bytes, secret: str) -> HookDelivery:
    h = _lower(headers)
    if not hmac.compare_digest(h.get("x-gitlab-token", "").encode(), secret.encode()):
        raise HookRejected(401, "X-Gitlab-Token is missing or wrong")
    data = _json(body)
    kind = data.get("object_kind")
    if kind not in ("push", "tag_push"):
        raise HookRejected(202, f"ignored: GitLab event {kind!r} is not a push")
    digest = hashlib.sha256(body).hexdigest()
    project = _obj(data.get("project"))
    urls = tuple(u for u in (_str(project.get(k)) for k in ("git_http_url", "git_ssh_url")) if u)
    return HookDelivery(
        source="gitlab",
        delivery_id=h.get("idempotency-key") or h.get("x-gitlab-event-uuid") or digest,
        event=str(kind),
        ref=_str(data.get("ref")),
        after_sha=_str(data.get("after")),
        before_sha=_str(data.get("before")),
        repository_urls=urls,
        body_sha256=digest,
    )


def parse_github(headers: Mapping[str, str], body: bytes, secret: str) -> HookDelivery:
    h = _lower(headers)
    _signed(h.get("x-hub-signature-256", ""), secret, body, "X-Hub-Signature-256")
    data = _json(body)
    event = h.get("x-github-event", "")
    if event != "push":
        raise HookRejected(202, f"ignored: GitHub event {event!r} is not a push")
    digest = hashlib.sha256(body).hexdigest()
    repo = _obj(data.get("repository"))
    urls = tuple(u for u in (_str(repo.get(k)) for k in ("clone_url", "ssh_url")) if u)
    return HookDelivery(
        source="github",
        delivery_id=h.get("x-github-delivery") or digest,
        event="push",
        ref=_str(data.get("ref")),
        after_sha=_str(data.get("after")),
        before_sha=_str(data.get("before")),
        repository_urls=urls,
        body_sha256=digest,
    )


def parse_generic(headers: Mapping[str, str], body: bytes, secret: str) -> HookDelivery:
    h = _lower(headers)
    _signed(h.get("x-conveyor-signature", ""), secret, body, "X-Conveyor-Signature")
    data = _json(body)
    digest = hashlib.sha256(body).hexdigest()
    return HookDelivery(
        source="generic",
        delivery_id=h.get("x-conveyor-delivery") or digest,
        event="push",
        ref=_str(data.get("ref")),
        after_sha=_str(data.get("after")),
        body_sha256=digest,
    )
