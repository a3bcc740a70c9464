"""Flux's notification events into the timeline (`POST /hooks/flux`, docs/flux.md).

An environment delivered to Kubernetes is applied by Flux, not by Conveyor: what Flux reports
about the environment's Kustomizations (applied, healthy, failed) becomes `flux.reconciled` /
`flux.failed` events of that environment, notified like every other event. Events about
objects that belong to no environment (flux-system, infrastructure) are recorded without one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.app.alerts import Emit
from conveyor.app.hooks import require_secret
from conveyor.errors import HookRejected
from conveyor.gitops.flux_events import FluxEvent, parse_event, verify_signature
from conveyor.model.events import EventKind, Level

MAX_BODY = 256 * 1024  # one event; Flux truncates long messages itself


@dataclass(frozen=True)
class FluxReceived:
    event: FluxEvent
    environment: str | None
    kind: EventKind


class FluxReceiver:
    """Checks each delivery's HMAC with the server's webhook secret and emits its event."""

    def __init__(
        self,
        secret: str | None,
        emit: Emit,
        environments: Callable[[], Mapping[str, object]],
    ) -> None:
        """`environments`: conveyor.yaml's environments as the server has them now."""
        self._secret = secret
        self._emit = emit
        self._environments = environments

    def receive(self, headers: Mapping[str, str], body: bytes) -> FluxReceived:
        """Raises HookRejected: 401 (no secret configured, a missing or wrong X-Signature),
        413 (a body over MAX_BODY), 400 (not a Flux event)."""
        secret = require_secret(self._secret)
        if len(body) > MAX_BODY:
            raise HookRejected(413, f"the body is larger than {MAX_BODY} bytes")
        verify_signature(headers, body, secret)
        event = parse_event(body)
        environment = event.environment(self._environments())
        kind: EventKind = "flux.failed" if event.severity == "error" else "flux.reconciled"
        level: Level = "error" if event.severity == "error" else "info"
        data: dict[str, Any] = {
            "kind": event.kind,
            "name": event.name,
            "namespace": event.namespace,
            "reason": event.reason,
            "revision": event.revision,
            "controller": event.controller,
        }
        where = f"{event.kind}/{event.name}"
        self._emit(kind, f"{where}: {event.reason}: {event.message}", level, data,
                   environment=environment)  # fmt: skip
        return FluxReceived(event=event, environment=environment, kind=kind)
