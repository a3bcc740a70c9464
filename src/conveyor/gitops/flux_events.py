"""Flux's notification-controller events as the server receives them (pure).

A `generic-hmac` Provider POSTs each event as JSON with `X-Signature: <hash>=<hex HMAC of the
body>`, keyed with the `token` of the Secret the Provider names (docs/flux.md: that token is the
server's webhook secret). The body is Flux's Event: `involvedObject` (kind, name, namespace),
`severity` (info or error), `reason`, `message`, `metadata` (the revision under a key ending in
`revision`), `reportingController`, `timestamp`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Literal

from conveyor.errors import HookRejected
from conveyor.model.frozen import Frozen

# The hash functions Flux may name in X-Signature (its docs: sha256 today, may change).
HASHES = {"sha224": hashlib.sha224, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
          "sha512": hashlib.sha512}  # fmt: skip
# What render.flux names an environment's Kustomizations: `apps-<env>`, `observability-<env>`.
KUSTOMIZATION_PREFIXES = ("apps-", "observability-")


class FluxEvent(Frozen):
    """One event of a Flux controller about one object."""

    kind: str  # Kustomization, GitRepository, HelmRelease...
    name: str
    namespace: str
    severity: Literal["info", "error"]
    reason: str
    message: str
    revision: str | None = None
    controller: str | None = None
    timestamp: str | None = None

    def environment(self, environments: Mapping[str, object]) -> str | None:
        """The conveyor.yaml environment this event is about, when its object is one of the
        environment's Kustomizations; None for what belongs to no one (flux-system,
        infrastructure)."""
        if self.kind != "Kustomization":
            return None
        for prefix in KUSTOMIZATION_PREFIXES:
            if self.name.startswith(prefix) and self.name[len(prefix) :] in environments:
                return self.name[len(prefix) :]
        return None


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Raise HookRejected(401) unless X-Signature is the HMAC of `body` keyed with `secret`."""
    given = next((v for k, v in headers.items() if k.lower() == "x-signature"), "")
    algorithm, _, digest = given.strip().partition("=")
    hash_function = HASHES.get(algorithm.lower())
    if hash_function is None or not digest:
        raise HookRejected(401, "X-Signature: sha256=<HMAC of the body> needed")
    expected = hmac.new(secret.encode(), body, hash_function).hexdigest()
    if not hmac.compare_digest(expected, digest.strip().lower()):
        raise HookRejected(401, "X-Signature does not match the body and the webhook secret")


def parse_event(body: bytes) -> FluxEvent:
    """The event in a body, or HookRejected(400) naming what is missing."""
    try:
        raw: Any = json.loads(body)
    except ValueError as e:
        raise HookRejected(400, f"not JSON: {e}") from e
    if not isinstance(raw, dict):
        raise HookRejected(400, "not a Flux event: the body is not a JSON object")
    involved = raw.get("involvedObject")
    if not isinstance(involved, dict) or not involved.get("kind") or not involved.get("name"):
        raise HookRejected(400, "not a Flux event: no involvedObject with a kind and a name")
    severity = raw.get("severity")
    if severity not in ("info", "error"):
        raise HookRejected(400, f"not a Flux event: severity {severity!r} (info or error)")
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    revision = next(
        (str(v) for k, v in sorted(metadata.items()) if str(k).endswith("revision")), None
    )
    return FluxEvent(
        kind=str(involved["kind"]),
        name=str(involved["name"]),
        namespace=str(involved.get("namespace") or ""),
        severity=severity,
        reason=str(raw.get("reason") or ""),
        message=str(raw.get("message") or ""),
        revision=revision,
        controller=str(raw["reportingController"]) if raw.get("reportingController") else None,
        timestamp=str(raw["timestamp"]) if raw.get("timestamp") else None,
    )
