"""Who may do what through the server's API: roles, API tokens (as stored: never the token
itself), the audit log, and webhook deliveries as recorded.

Roles are ordered: a viewer reads, a deployer also acts on environments (promote, rollback,
suspend, resume, approve), an admin also manages tokens and reads the audit log.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from conveyor.model.frozen import Frozen

Role = Literal["viewer", "deployer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "deployer", "admin")

AuditOutcome = Literal["ok", "denied", "refused", "failed"]
DeliveryStatus = Literal["pending", "done", "ignored", "failed"]


def role_allows(role: Role, needed: Role) -> bool:
    """True when `role` is `needed` or above it."""
    return ROLES.index(role) >= ROLES.index(needed)


class Principal(Frozen):
    """Who made a request: a token's name and role, or "cli" for a command on this host."""

    name: str
    role: Role


class Token(Frozen):
    """An API token as stored: its SHA-256 hash stands for it, the token is shown once."""

    id: int
    name: str
    role: Role
    hash: str = Field(repr=False)
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class AuditRecord(Frozen):
    """One request that acted (or tried to): who, what, on what, and how it ended."""

    id: int
    at: float
    actor: str
    role: Role | None
    action: str
    target: str
    detail: dict[str, Any] = Field(default_factory=dict)
    outcome: AuditOutcome


class StoredDelivery(Frozen):
    """A webhook delivery as persisted before it was answered with a 2xx."""

    source: str  # gitlab | github | generic
    delivery_id: str
    received_at: float
    ref: str | None
    after_sha: str | None
    payload: dict[str, Any] = Field(default_factory=dict)
    status: DeliveryStatus = "pending"
