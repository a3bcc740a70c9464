"""notes: a small web app that keeps notes in PostgreSQL and counts reads in Redis.

It finds its database and cache by name (`db:5432`, `cache:6379`), as any Compose app does, and
listens on the port its image uses (8000). Routes:

    GET  /health            200 when PostgreSQL and Redis answer, else 503
    GET  /notes             the newest notes (JSON)
    POST /notes             {"text": "..."} -> 201 {"id": N, ...}
    GET  /notes/{id}        one note, with how often it was read (Redis INCR)

SIGTERM: stop accepting, finish the requests in flight, exit 0 (draining is Conveyor's job).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pg8000.native
import redis

VERSION = os.environ.get("APP_VERSION", "1.0.0")
REPLICA = os.environ.get("CONVEYOR_REPLICA") or socket.gethostname()
DB = urlsplit(os.environ.get("DATABASE_URL", "postgresql://notes:notes@db:5432/notes"))
CACHE = redis.Redis.from_url(
    os.environ.get("REDIS_URL", "redis://cache:6379/0"), socket_timeout=2, socket_connect_timeout=2
)
NOTE = re.compile(r"^/notes/(\d+)$")
_local = threading.local()


def db() -> pg8000.native.Connection:
    """One connection per server thread, opened again after an error."""
    conn: pg8000.native.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = pg8000.native.Connection(
            user=DB.username or "notes",
            password=DB.password,
            host=DB.hostname or "db",
            port=DB.port or 5432,
            database=DB.path.lstrip("/") or "notes",
            timeout=5,
        )
        _local.conn = conn
    return conn


def query(sql: str, **params: Any) -> list[list[Any]]:
    try:
        return db().run(sql, **params) or []
    except Exception:
        _local.conn = None  # a broken connection is not reused
        raise


def migrate(attempts: int = 30) -> None:
    """Create the table; retried, since the database may still be starting and two replicas
    starting together may race on CREATE TABLE IF NOT EXISTS."""
    for attempt in range(attempts):
        try:
            query(
                "CREATE TABLE IF NOT EXISTS notes ("
                " id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL,"
                " created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            return
        except Exception as e:
            if attempt == attempts - 1:
                raise
            print(f"waiting for the database: {e}", file=sys.stderr, flush=True)
            time.sleep(1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"notes/{VERSION}"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/health":
            self._health()
        elif path == "/notes":
            rows = query("SELECT id, text, created_at FROM notes ORDER BY id DESC LIMIT 100")
            self._json(200, {"notes": [_note(r) for r in rows], "replica": REPLICA})
        elif m := NOTE.match(path):
            rows = query("SELECT id, text, created_at FROM notes WHERE id = :id", id=int(m[1]))
            if not rows:
                self._json(404, {"error": "no such note"})
                return
            reads = int(CACHE.incr(f"notes:{m[1]}:reads"))
            self._json(200, {**_note(rows[0]), "reads": reads, "replica": REPLICA})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/notes":
            self._json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            text = json.loads(self.rfile.read(length) or b"{}")["text"]
        except (ValueError, KeyError, TypeError):
            self._json(400, {"error": 'expected {"text": "..."}'})
            return
        rows = query(
            "INSERT INTO notes (text) VALUES (:text) RETURNING id, text, created_at", text=str(text)
        )
        self._json(201, {**_note(rows[0]), "replica": REPLICA})

    def _health(self) -> None:
        try:
            query("SELECT 1")
            CACHE.ping()
        except Exception as e:
            self._json(503, {"status": "unhealthy", "error": str(e)})
            return
        self._json(200, {"status": "ok", "version": VERSION, "replica": REPLICA})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Replica", REPLICA)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("NOTES_ACCESS_LOG"):
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def _note(row: list[Any]) -> dict[str, Any]:
    return {"id": row[0], "text": row[1], "created_at": row[2].isoformat()}


def main() -> None:
    migrate()
    server = ThreadingHTTPServer(
        (os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8000"))),
        Handler,
    )
    server.daemon_threads = False  # shutdown waits for requests in flight
    server.block_on_close = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"notes {VERSION} ({REPLICA}) on port {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
