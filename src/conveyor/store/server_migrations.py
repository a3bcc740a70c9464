"""The server database's numbered migrations (`<data dir>/server.db`), apart from a project's
(`store.migrations`): the server keeps who may call its API, what they did, and every webhook
delivery it answered. Never edit one that has shipped: append a new one.

1: API tokens (their SHA-256 hash, never the token), the audit log, webhook deliveries
(unique per source and delivery id, so a redelivery changes nothing).
2: the server's events (what the API lists and streams), kept across restarts, in the same
table a project's timeline uses.
3: the dashboard's sign-in sessions (the SHA-256 hash of the session id, never the id), each
tied to the API token it was opened with: revoking the token ends them.
"""

from __future__ import annotations

from conveyor.store.migrations import TIMELINE_TABLE, Migration

_V1 = """
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin')),
    hash TEXT NOT NULL UNIQUE,     -- sha256 hex of the token; the token is shown once
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
-- a name is taken while its token is active; a revoked token's name can be given again
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,           -- a token's name, or 'cli'
    role TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'refused', 'failed'))
);
CREATE TABLE hook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    ref TEXT,
    after_sha TEXT,
    payload TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'done', 'ignored', 'failed')),
    UNIQUE (source, delivery_id)
);
CREATE INDEX hook_deliveries_status ON hook_deliveries (status, id);
"""

_V3 = """
CREATE TABLE web_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL UNIQUE,     -- sha256 hex of the session id; the id is in the cookie only
    token_id INTEGER NOT NULL REFERENCES tokens (id),
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL       -- the absolute end; idleness is judged from last_seen_at
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
"""

SERVER_MIGRATIONS: tuple[tuple[Migration, ...], ...] = ((_V1,), (TIMELINE_TABLE,), (_V3,))
