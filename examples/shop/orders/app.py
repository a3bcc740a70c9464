"""orders: records orders in SQLite on the `orders-data` volume (several replicas share it)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

SERVICE = "orders"

# --- common: identical in gateway, catalog and orders (a unit test compares the copies) ---
VERSION = os.environ.get("APP_VERSION", "1.0.0")
REPLICA = os.environ.get("CONVEYOR_REPLICA") or socket.gethostname()
REQUESTS = Counter("http_requests_total", "Requests served", ["method", "path", "status"])
LATENCY = Histogram("http_request_duration_seconds", "Time to serve a request", ["method", "path"])


class Request(NamedTuple):
    params: dict[str, str]  # from the path template, e.g. {"id": ...} for /products/{id}
    body: bytes
    id: str  # X-Request-ID, passed on to the services this one calls


Reply = tuple[int, str, bytes]  # status, content type, body
Route = tuple[str, str, Callable[[Request], Reply]]  # method, path template, handler


class HTTPFailure(Exception):
    """Raised by a handler to answer `status` with a JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


LOG_LOCK = threading.Lock()  # request threads log concurrently: one whole line at a time


def log(level: str, **fields: Any) -> None:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    doc = {"ts": ts, "level": level, "service": SERVICE, "replica": REPLICA, **fields}
    line = json.dumps(doc) + "\n"
    with LOG_LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()


def json_reply(status: int, doc: Any) -> Reply:
    return status, "application/json", json.dumps(doc).encode()


def read_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise HTTPFailure(400, "body must be a JSON object")
    return doc


def health(_: Request) -> Reply:
    if os.environ.get("FAIL_HEALTH") == "1":  # test hook: a release that never becomes healthy
        return json_reply(503, {"status": "failing", "reason": "FAIL_HEALTH=1"})
    return json_reply(200, {"status": "ok"})


def version(_: Request) -> Reply:
    return json_reply(200, {"service": SERVICE, "version": VERSION, "replica": REPLICA})


def metrics(_: Request) -> Reply:
    return 200, CONTENT_TYPE_LATEST, generate_latest()


class Handler(BaseHTTPRequestHandler):
    routes: ClassVar[list[tuple[str, str, re.Pattern[str], Callable[[Request], Reply]]]] = []
    timeout = 10  # an idle client must not hold a thread, and so shutdown, for ever

    def do_GET(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        start, path = time.perf_counter(), urlsplit(self.path).path
        request_id = self.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]
        label, (status, ctype, body) = self.answer(path, request_id)
        with contextlib.suppress(ConnectionError):  # a client that left is still counted
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Request-ID", request_id)
            self.end_headers()
            self.wfile.write(body)
        elapsed = time.perf_counter() - start
        REQUESTS.labels(self.command, label, str(status)).inc()
        LATENCY.labels(self.command, label).observe(elapsed)
        level = "error" if status >= 500 else "warning" if status >= 400 else "info"
        fields = {"method": self.command, "path": path, "status": status, "request_id": request_id}
        log(level, **fields, duration_ms=round(elapsed * 1000, 2))

    def answer(self, path: str, request_id: str) -> tuple[str, Reply]:
        """The route's template (a bounded metrics label) and the reply."""
        for method, template, pattern, handler in self.routes:
            if method == self.command and (match := pattern.fullmatch(path)):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    return template, handler(Request(match.groupdict(), body, request_id))
                except HTTPFailure as exc:
                    return template, json_reply(exc.status, {"error": str(exc)})
                except Exception as exc:  # a bug answers 500 and is logged; the replica stays up
                    log("error", msg="handler failed", path=path, error=repr(exc))
                    return template, json_reply(500, {"error": "internal error"})
        return "other", json_reply(404, {"error": f"no route for {self.command} {path}"})

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: dispatch() writes one JSON line per request instead."""


def serve(routes: list[Route]) -> None:
    builtin: list[Route] = [("GET", "/health", health), ("GET", "/version", version)]
    for method, template, handler in [*builtin, ("GET", "/metrics", metrics), *routes]:
        pattern = re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))
        Handler.routes.append((method, template, pattern, handler))
    if not os.environ.get("PORT"):
        log("error", msg="PORT is required")
        sys.exit(2)
    host = os.environ.get("HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, int(os.environ["PORT"])), Handler)
    server.daemon_threads = False  # so that server_close() waits for the requests in flight

    def stop(signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever() to return, and that runs in this very thread;
        # the other thread also logs, as print() is not safe inside a signal handler
        threading.Thread(target=shut_down, args=(server, signal.Signals(signum).name)).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if crash_after := os.environ.get("CRASH_AFTER"):  # test hook: a release that dies
        timer = threading.Timer(float(crash_after), crash)
        timer.daemon = True  # must not keep a gracefully stopped process alive
        timer.start()
    log("info", msg="listening", host=host, port=server.server_port, version=VERSION)
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # closes the listening socket, then joins the requests in flight
    log("info", msg="stopped")


def shut_down(server: ThreadingHTTPServer, signame: str) -> None:
    log("info", msg="stopping", signal=signame)
    server.shutdown()


def crash() -> None:
    log("error", msg="exiting 1 as asked by CRASH_AFTER")
    os._exit(1)


# --- end of common ---

DB_PATH = os.environ.get("ORDERS_DB", "/data/orders.db")
MAX_QUANTITY = 100


@contextmanager
def database() -> Iterator[sqlite3.Connection]:
    # A connection per request: sqlite3 connections must not be shared between threads.
    # isolation_level=None is autocommit (each INSERT is its own transaction); the busy
    # timeout makes a writer wait for the other replica's write lock instead of failing.
    with closing(sqlite3.connect(DB_PATH, timeout=5.0, isolation_level=None)) as conn:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.row_factory = sqlite3.Row
        yield conn


def init_db() -> None:
    with database() as conn:
        # WAL: readers never block the writer, and it works across processes on one host
        # (the -shm file is shared memory), which is what two replicas on one volume are.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS orders ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " product_id TEXT NOT NULL,"
            " quantity INTEGER NOT NULL CHECK (quantity > 0),"
            " created_at TEXT NOT NULL,"
            " replica TEXT NOT NULL)"
        )


def create_order(request: Request) -> Reply:
    doc = read_json(request.body)
    product_id, quantity = doc.get("product_id"), doc.get("quantity")
    if not isinstance(product_id, str) or not 0 < len(product_id) <= 64:
        raise HTTPFailure(400, "product_id must be a non-empty string")
    # bool is an int in Python; `true` is not a quantity
    if type(quantity) is not int or not 0 < quantity <= MAX_QUANTITY:
        raise HTTPFailure(400, f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    with database() as conn:
        cursor = conn.execute(
            "INSERT INTO orders (product_id, quantity, created_at, replica) VALUES (?, ?, ?, ?)",
            (product_id, quantity, created_at, REPLICA),
        )
    order = {"id": cursor.lastrowid, "product_id": product_id, "quantity": quantity}
    return json_reply(201, {**order, "created_at": created_at, "replica": REPLICA})


def list_orders(_: Request) -> Reply:
    with database() as conn:
        rows = conn.execute("SELECT * FROM orders ORDER BY id").fetchall()
    return json_reply(200, {"orders": [dict(row) for row in rows]})


if __name__ == "__main__":
    init_db()
    serve([("POST", "/orders", create_order), ("GET", "/orders", list_orders)])
