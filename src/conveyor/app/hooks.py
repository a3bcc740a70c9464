"""Receiving a webhook delivery: verify it, then persist it before anyone answers 2xx, so a
delivery GitLab (or GitHub) saw accepted survives a crash of the server; a redelivery of a
known id is reported as a duplicate and changes nothing.

The server's controller takes persisted deliveries from here: at once (the API hands each new
one to the backend) and, after a restart, the ones still `pending` (`pending_deliveries`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import BaseModel

from conveyor.app.metrics import count_webhook
from conveyor.errors import HookRejected
from conveyor.gitops.hooks import HookDelivery, parse_generic, parse_github, parse_gitlab
from conveyor.model.access import DeliveryStatus, StoredDelivery
from conveyor.store.server_db import ServerDatabase

__all__ = [
    "HOOK_SOURCES",
    "MAX_BODY",
    "HookDelivery",
    "HookReceipt",
    "HookRejected",
    "HookSource",
    "mark_delivery",
    "pending_deliveries",
    "receive_hook",
    "require_secret",
    "settle_deliveries",
]

HookSource = Literal["gitlab", "github", "generic"]
HOOK_SOURCES: tuple[HookSource, ...] = ("gitlab", "github", "generic")
Parser = Callable[[Mapping[str, str], bytes, str], HookDelivery]
PARSERS: dict[HookSource, Parser] = {
    "gitlab": parse_gitlab,
    "github": parse_github,
    "generic": parse_generic,
}
# GitLab caps push payloads at 20 commits' details; a body this large is not a push hook.
MAX_BODY = 5 * 1024 * 1024


class HookReceipt(BaseModel):
    delivery: HookDelivery
    duplicate: bool


def receive_hook(
    sdb: ServerDatabase,
    source: HookSource,
    headers: Mapping[str, str],
    body: bytes,
    secret: str | None,
) -> HookReceipt:
    """Verify a delivery with `secret` and persist it as pending. Raises `HookRejected` (and
    persists nothing) for a wrong or missing secret (401), a bad body (400, 413) or an event
    that is not a push (202)."""
    try:
        receipt = _receive(sdb, source, headers, body, secret)
    except HookRejected:
        count_webhook(source, "rejected")
        raise
    count_webhook(source, "duplicate" if receipt.duplicate else "accepted")
    return receipt


def require_secret(secret: str | None) -> str:
    """The webhook secret, or HookRejected(401) when the server has none (webhooks are off)."""
    if not secret:
        raise HookRejected(
            401,
            "webhooks are off: the server has no webhook secret "
            "(CONVEYOR_WEBHOOK_SECRET or --webhook-secret-file)",
        )
    return secret


def _receive(
    sdb: ServerDatabase,
    source: HookSource,
    headers: Mapping[str, str],
    body: bytes,
    secret: str | None,
) -> HookReceipt:
    secret = require_secret(secret)
    if len(body) > MAX_BODY:
        raise HookRejected(413, f"the body is larger than {MAX_BODY} bytes")
    delivery = PARSERS[source](headers, body, secret)
    payload = json.loads(body)  # the parser accepted it: a JSON object
    added = sdb.deliveries.add(
        source, delivery.delivery_id, delivery.ref, delivery.after_sha, payload
    )
    return HookReceipt(delivery=delivery, duplicate=added == "duplicate")


def pending_deliveries(sdb: ServerDatabase, limit: int = 1000) -> list[StoredDelivery]:
    """Deliveries answered 2xx that no controller finished yet, oldest first."""
    return sdb.deliveries.with_status("pending", limit)


def mark_delivery(
    sdb: ServerDatabase, source: str, delivery_id: str, status: DeliveryStatus
) -> bool:
    """Record what the controller made of a delivery (done, ignored, failed)."""
    return sdb.deliveries.mark(source, delivery_id, status)


def settle_deliveries(sdb: ServerDatabase, started: float) -> int:
    """Mark `done` the pending deliveries received before `started`, the time a fetch-and-sync
    pass began: that pass fetched every push they announced. Later ones stay pending for the
    next pass. Returns how many were marked."""
    marked = 0
    while True:
        batch = [d for d in pending_deliveries(sdb) if d.received_at < started]
        now = sum(mark_delivery(sdb, d.source, d.delivery_id, "done") for d in batch)
        marked += now
        if len(batch) < 1000 or not now:  # a whole page was marked: look again past it
            return marked
