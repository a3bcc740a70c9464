"""Webhook deliveries: authenticated, then read into one `HookDelivery` whatever sent them.

Pure: the HTTP route hands over the request's headers and raw body, and answers with the
status of a `HookRejected` or, for a delivery to act on, persists it and answers 2xx. The
secret is checked before a byte of the body is parsed, in constant time (`hmac.compare_digest`),
and for HMAC signatures over the exact bytes received.

- GitLab (`POST /hooks/gitlab`): `X-Gitlab-Token` is the secret itself; Push Hook and Tag Push
  Hook (`object_kind` push / tag_push). Delivery id: `Idempotency-Key` (kept across GitLab's
  retries), else `X-Gitlab-Event-UUID`, else the body's hash.
- GitHub (`POST /hooks/github`): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`,
  `X-GitHub-Event: push` (tags too) or `ping`, `X-GitHub-Delivery`; JSON or form-encoded
  (`payload=`) bodies, the two content types GitHub offers.
- Generic (`POST /hooks/generic`, Conveyor's own, docs/gitops.md): `X-Conveyor-Signature:
  sha256=<hex HMAC-SHA256 of the body>`, JSON `{"ref": "refs/heads/main", "after": "<sha>"}`
  (optional `before`, `repository`), optional `X-Conveyor-Delivery`.

A replayed delivery reads into the same `key`: the server keeps the keys it acted on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from conveyor.errors import HookRejected
from conveyor.model.frozen import Frozen

MAX_BODY = 5 * 1024 * 1024  # bytes; GitLab and GitHub push payloads stay far below
ZERO_SHA = "0" * 40

HookSource = Literal["gitlab", "github", "generic"]
HookEvent = Literal["push", "tag_push"]

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 and SHA-256 repositories
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_GITLAB_EVENTS = {"Push Hook": "push", "Tag Push Hook": "tag_push", "System Hook": None}


class HookDelivery(Frozen):
    """One push a git server told us about."""

    source: HookSource
    delivery_id: str  # the sender's id of this delivery (its retries keep it), or the body hash
    event: HookEvent  # tag_push when `ref` is a tag
    ref: str  # refs/heads/<branch> or refs/tags/<tag>
    after_sha: str  # all zeros when the ref was deleted
    before_sha: str | None  # all zeros when the ref was created; None when not sent
    repository_urls: tuple[
        str, ...
    ]  # the clone URLs the payload names (match with same_repository)
    body_sha256: str  # hex digest of the raw body as received

    @property
    def key(self) -> str:
        """What identifies the delivery across replays: `<source>:<delivery id>`."""
        return f"{self.source}:{self.delivery_id}"

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None

    @property
    def deleted(self) -> bool:
        return set(self.after_sha) == {"0"}


def parse_gitlab(headers: Mapping[str, str], body: bytes, secret: str) -> HookDelivery:
    """A GitLab Push Hook or Tag Push Hook. Raises HookRejected."""
    h = _lower(headers)
    _check_size(body)
    _check_secret_set(secret)
    given = h.get("x-gitlab-token", "")
    if not given:
        raise HookRejected(401, "missing X-Gitlab-Token header")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise HookRejected(401, "wrong X-Gitlab-Token")
    header_event = h.get("x-gitlab-event", "")
    if header_event and header_event not in _GITLAB_EVENTS:
        raise HookRejected(202, f"ignored: GitLab event '{header_event}' (only pushes deploy)")
    payload = _json(body)
    kind = payload.get("object_kind")
    if kind not in ("push", "tag_push"):
        raise HookRejected(202, f"ignored: GitLab object_kind {_shown(kind)} (only pushes deploy)")
    urls = _urls(payload, ("project", "git_http_url"), ("project", "git_ssh_url"))
    urls += _urls(payload, ("repository", "git_http_url"), ("repository", "git_ssh_url"))
    delivery = h.get("idempotency-key") or h.get("x-gitlab-event-uuid") or ""
    return _delivery("gitlab", delivery, payload, body, _dedup(urls))


def parse_github(headers: Mapping[str, str], body: bytes, secret: str) -> HookDelivery:
    """A GitHub push event (branches and tags). Raises HookRejected (202 for `ping`)."""
    h = _lower(headers)
    _check_size(body)
    _check_hmac(h, "x-hub-signature-256", body, secret)
    event = h.get("x-github-event", "")
    if event == "ping":
        raise HookRejected(202, "ping received: the secret matches")
    if event != "push":
        raise HookRejected(202, f"ignored: GitHub event {_shown(event)} (only pushes deploy)")
    payload = _json(_github_json(h, body))
    urls = _urls(
        payload,
        ("repository", "clone_url"),
        ("repository", "ssh_url"),
        ("repository", "git_url"),
        ("repository", "html_url"),
    )
    return _delivery("github", h.get("x-github-delivery", ""), payload, body, urls)


def parse_generic(headers: Mapping[str, str], body: bytes, secret: str) -> HookDelivery:
    """Conveyor's own hook for any git server or script. Raises HookRejected."""
    h = _lower(headers)
    _check_size(body)
    _check_hmac(h, "x-conveyor-signature", body, secret)
    payload = _json(body)
    repository = payload.get("repository")
    if repository is not None and not isinstance(repository, str):
        raise HookRejected(400, "'repository' must be the repository's URL (a string)")
    urls = (repository,) if repository else ()
    return _delivery("generic", h.get("x-conveyor-delivery", ""), payload, body, urls)


def sign(body: bytes, secret: str) -> str:
    """The signature header value a sender computes: `sha256=<hex HMAC-SHA256 of body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def same_repository(a: str, b: str) -> bool:
    """Whether two clone URLs name one repository: scheme, user, port, letter case of the host,
    a trailing `.git` and `/` aside (`git@host:g/app.git` is `https://host/g/app`)."""
    return _repository_key(a) == _repository_key(b)


# --- parts ---------------------------------------------------------------------------------


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v.strip() for k, v in headers.items()}


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise HookRejected(413, f"body larger than {MAX_BODY // 1024 // 1024} MiB")


def _check_secret_set(secret: str) -> None:
    if not secret:
        # An empty key would let anyone sign: refuse every delivery instead.
        raise HookRejected(401, "no webhook secret is configured (CONVEYOR_WEBHOOK_SECRET)")


def _check_hmac(h: Mapping[str, str], header: str, body: bytes, secret: str) -> None:
    _check_secret_set(secret)
    given = h.get(header, "")
    if not given:
        raise HookRejected(401, f"missing {_header_name(header)} header")
    match = _SIGNATURE.fullmatch(given)
    if match is None:
        raise HookRejected(401, f"malformed {_header_name(header)} (expected sha256=<hex>)")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(match.group(1).lower().encode(), expected.encode()):
        raise HookRejected(401, f"wrong {_header_name(header)}: the body or the secret differs")


def _header_name(lower: str) -> str:
    names = {
        "x-hub-signature-256": "X-Hub-Signature-256",
        "x-conveyor-signature": "X-Conveyor-Signature",
    }
    return names.get(lower, lower)


def _github_json(h: Mapping[str, str], body: bytes) -> bytes:
    """The JSON of a GitHub delivery: the body, or its `payload` field when form-encoded."""
    if not h.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return body
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise HookRejected(400, "form-encoded body does not parse") from None
    payload = form.get("payload")
    if not payload:
        raise HookRejected(400, "form-encoded body has no 'payload' field")
    return payload[0].encode()


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise HookRejected(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise HookRejected(400, "body must be a JSON object")
    return data


def _delivery(
    source: HookSource,
    delivery_id: str,
    payload: Mapping[str, Any],
    body: bytes,
    urls: tuple[str, ...],
) -> HookDelivery:
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith(("refs/heads/", "refs/tags/")):
        raise HookRejected(
            400, f"'ref' must be refs/heads/<branch> or refs/tags/<tag>, got {_shown(ref)}"
        )
    after = _sha(payload, "after", required=True)
    assert after is not None
    digest = hashlib.sha256(body).hexdigest()
    return HookDelivery(
        source=source,
        delivery_id=delivery_id[:200] or f"sha256:{digest}",
        event="tag_push" if ref.startswith("refs/tags/") else "push",
        ref=ref,
        after_sha=after,
        before_sha=_sha(payload, "before", required=False),
        repository_urls=urls,
        body_sha256=digest,
    )


def _sha(payload: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise HookRejected(400, f"'{key}' must be a full commit id (hex), got {_shown(value)}")
    return value


def _urls(payload: Mapping[str, Any], *paths: tuple[str, str]) -> tuple[str, ...]:
    found: list[str] = []
    for outer, inner in paths:
        section = payload.get(outer)
        value = section.get(inner) if isinstance(section, dict) else None
        if isinstance(value, str) and value:
            found.append(value)
    return tuple(found)


def _dedup(urls: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(urls))


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


_SCP_LIKE = re.compile(r"(?:[^@/]+@)?([^:/]+):(?!//)(.*)")


def _repository_key(url: str) -> tuple[str, str]:
    text = url.strip()
    scp = _SCP_LIKE.fullmatch(text) if "://" not in text else None
    if scp is not None:
        host, path = scp.group(1), scp.group(2)
    else:
        parts = urlsplit(text)
        host, path = parts.hostname or "", parts.path
    path = path.strip("/").removesuffix(".git").rstrip("/")
    return host.lower(), path
