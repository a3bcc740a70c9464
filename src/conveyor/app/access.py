"""Who may call the server's API: API tokens (created, listed, revoked, verified) and the audit
log of what was done with them. The server database lives in the server's data directory.

A token is `cvr_` + 32 random bytes, URL-safe base64; only its SHA-256 hash is stored, so a
copy of the database gives no access. Verification compares the presented token's hash with
every active token's in constant time (`hmac.compare_digest`, no early exit)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path
from typing import Any

from conveyor.app.server_views import AuditLog, TokenCreated, TokenList, TokenView
from conveyor.errors import ServerError, UnknownToken
from conveyor.model.access import AuditOutcome, AuditRecord, Principal, Role, Token
from conveyor.store.server_db import ServerDatabase

__all__ = [
    "CLI",
    "DEFAULT_DATA_DIR",
    "TOKEN_PREFIX",
    "ServerDatabase",
    "audit_log",
    "authenticate",
    "create_token",
    "find_token",
    "list_tokens",
    "open_server_db",
    "record",
    "revoke_token",
    "token_hash",
]

# Relative to the directory the server (or `conveyor token`) runs in; --data overrides it.
DEFAULT_DATA_DIR = Path(".conveyor-server")
TOKEN_PREFIX = "cvr_"  # noqa: S105 — a prefix that marks tokens in logs and scans, no secret
CLI = Principal(name="cli", role="admin")  # a command run on the server's host, by its owner
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def open_server_db(data_dir: Path) -> ServerDatabase:
    """The server database in `data_dir` (created 0700, files 0600, migrated)."""
    return ServerDatabase.open(data_dir)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    sdb: ServerDatabase, role: Role, name: str | None = None, actor: Principal = CLI
) -> TokenCreated:
    """A new token for `role`, named `name` (default `<role>-<n>`); the token is in the result
    and nowhere else. Recorded in the audit log."""
    if name is not None and not _NAME.fullmatch(name):
        raise ServerError(
            f"token name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    name = name or _free_name(sdb, role)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        sdb.tokens.add(name, role, token_hash(token))
    except ServerError:
        record(sdb, actor, "token.create", name, "refused", {"role": role})
        raise
    record(sdb, actor, "token.create", name, "ok", {"role": role})
    return TokenCreated(name=name, role=role, token=token)


def _free_name(sdb: ServerDatabase, role: Role) -> str:
    taken = sdb.tokens.names()  # revoked names too: the audit log keeps meaning one token
    n = 1
    while f"{role}-{n}" in taken:
        n += 1
    return f"{role}-{n}"


def list_tokens(sdb: ServerDatabase, include_revoked: bool = False) -> TokenList:
    tokens = sdb.tokens.all() if include_revoked else sdb.tokens.active()
    return TokenList(tokens=[token_view(t) for t in tokens])


def token_view(t: Token) -> TokenView:
    return TokenView(
        name=t.name,
        role=t.role,
        created_at=t.created_at,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
    )


def revoke_token(sdb: ServerDatabase, name: str, actor: Principal = CLI) -> TokenView:
    """Revoke the active token `name`: requests with it get 401 from now on."""
    t = sdb.tokens.revoke(name)
    if t is None:
        record(sdb, actor, "token.revoke", name, "refused", {"reason": "no such token"})
        raise UnknownToken(f"no active token named {name!r} (`conveyor token list` shows them)")
    record(sdb, actor, "token.revoke", name, "ok", {"role": t.role})
    return token_view(t)


def authenticate(sdb: ServerDatabase, presented: str) -> Principal | None:
    """The principal whose active token `presented` is, else None. Every active token's hash
    is compared, in constant time, whatever matched before."""
    found = find_token(sdb, presented)
    return None if found is None else Principal(name=found.name, role=found.role)


def find_token(sdb: ServerDatabase, presented: str) -> Token | None:
    """The active token `presented` is (recorded as used now), else None: `authenticate`,
    for callers that keep the token's id (the dashboard's sessions)."""
    digest = token_hash(presented)
    found: Token | None = None
    for t in sdb.tokens.active():
        if hmac.compare_digest(digest, t.hash) and found is None:
            found = t
    if found is None:
        return None
    sdb.tokens.touch(found.id, time.time())
    return found


def record(
    sdb: ServerDatabase,
    actor: Principal | None,
    action: str,
    target: str,
    outcome: AuditOutcome,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """One line of the audit log: who (None: an unauthenticated caller), what, on what."""
    return sdb.audit.record(
        actor.name if actor else "anonymous",
        actor.role if actor else None,
        action,
        target,
        outcome,
        detail,
    )


def audit_log(sdb: ServerDatabase, limit: int = 100, before: int | None = None) -> AuditLog:
    return AuditLog(records=sdb.audit.latest(limit, before))
