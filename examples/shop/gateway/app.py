"""gateway: the shop's public entry; an HTML page and a JSON API over catalog and orders."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple
from urllib.error import HTTPError
from urllib.parse import parse_qsl, quote, urlsplit
from urllib.request import ProxyHandler, build_opener
from urllib.request import Request as OutboundRequest

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

SERVICE = "gateway"

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

UPSTREAMS = ("CATALOG", "ORDERS")  # found through <NAME>_SERVICE_HOST / <NAME>_SERVICE_PORT
TIMEOUT = 2.0  # seconds: a slow dependency must fail fast, not pile up threads here
# service-to-service calls go straight to 127.0.0.1, never through an HTTP(S)_PROXY
OPENER = build_opener(ProxyHandler({}))


def call(service: str, method: str, path: str, request_id: str, doc: Any = None) -> tuple[int, Any]:
    """(status, JSON body) of one call to another shop service; 502 when it does not answer."""
    base = f"http://{os.environ[service + '_SERVICE_HOST']}:{os.environ[service + '_SERVICE_PORT']}"
    data = None if doc is None else json.dumps(doc).encode()
    headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
    outbound = OutboundRequest(base + path, data=data, headers=headers, method=method)
    try:
        with OPENER.open(outbound, timeout=TIMEOUT) as resp:
            status, raw = resp.status, resp.read()
    except HTTPError as exc:  # a 4xx/5xx answer is still an answer: pass it on
        status, raw = exc.code, exc.read()
    except OSError as exc:  # refused, reset, timed out
        raise HTTPFailure(502, f"{service.lower()} unavailable: {exc}") from exc
    try:
        return status, json.loads(raw)
    except ValueError as exc:
        raise HTTPFailure(502, f"{service.lower()} answered {status} without JSON") from exc


def fetch(service: str, path: str, request_id: str) -> Any:
    status, doc = call(service, "GET", path, request_id)
    if status != 200:
        raise HTTPFailure(502, f"{service.lower()} answered {status} to {path}")
    return doc


def place_order(doc: dict[str, Any], request_id: str) -> tuple[int, Any]:
    """Check the product against the catalog and the stock left, then record the order."""
    product_id, quantity = doc.get("product_id"), doc.get("quantity")
    if not isinstance(product_id, str) or not product_id:
        raise HTTPFailure(400, "product_id must be a non-empty string")
    status, product = call("CATALOG", "GET", "/products/" + quote(product_id, safe=""), request_id)
    if status == 404:
        raise HTTPFailure(422, f"unknown product {product_id!r}")
    if status != 200:
        raise HTTPFailure(502, f"catalog answered {status}")
    orders = fetch("ORDERS", "/orders", request_id)["orders"]
    if isinstance(quantity, int) and quantity > stock_left(product, orders):
        raise HTTPFailure(409, f"not enough {product['name']} in stock")
    return call("ORDERS", "POST", "/orders", request_id, doc)  # orders validates the quantity


def stock_left(product: dict[str, Any], orders: list[dict[str, Any]]) -> int:
    ordered = sum(int(o["quantity"]) for o in orders if o["product_id"] == product["id"])
    return max(0, int(product["stock"]) - ordered)


def api_products(request: Request) -> Reply:
    return json_reply(*call("CATALOG", "GET", "/products", request.id))


def api_orders(request: Request) -> Reply:
    return json_reply(*call("ORDERS", "GET", "/orders", request.id))


def api_create_order(request: Request) -> Reply:
    return json_reply(*place_order(read_json(request.body), request.id))


def index(request: Request) -> Reply:
    return page(200, "", request.id)


def order_form(request: Request) -> Reply:
    """The page's form posts here (urlencoded): place the order, show the page with the outcome."""
    form = dict(parse_qsl(request.body.decode(errors="replace")))
    quantity = form.get("quantity", "")
    doc = {
        "product_id": form.get("product_id"),
        "quantity": int(quantity) if quantity.isdigit() else quantity,
    }
    try:
        status, result = place_order(doc, request.id)
    except HTTPFailure as exc:
        status, result = exc.status, {"error": str(exc)}
    if status == 201:
        return page(status, f"Order {result['id']} placed.", request.id)
    return page(status, f"Order refused: {result.get('error')}", request.id)


def page(status: int, message: str, request_id: str) -> Reply:
    products = fetch("CATALOG", "/products", request_id)["products"]
    orders = fetch("ORDERS", "/orders", request_id)["orders"]
    rows = "".join(
        ROW.format(
            pid=html.escape(p["id"]),
            name=html.escape(p["name"]),
            price=p["price_cents"] / 100,
            stock=stock_left(p, orders),
        )
        for p in products
    )
    info = {"version": VERSION, "replica": REPLICA, "message": message}
    body = PAGE.format(rows=rows, **{k: html.escape(v) for k, v in info.items()})
    return status, "text/html; charset=utf-8", body.encode()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body>
<h1>Shop</h1>
<p id="message">{message}</p>
<table id="products">
<tr><th>Product</th><th>Price</th><th>In stock</th><th>Order</th></tr>
{rows}</table>
<footer>gateway {version} on <span id="replica">{replica}</span></footer>
</body></html>
"""
ROW = """<tr id="product-{pid}">
<td>{name}</td><td>{price:.2f}</td><td class="stock">{stock}</td>
<td><form method="post" action="/order"><input type="hidden" name="product_id" value="{pid}">
<input name="quantity" type="number" min="1" value="1"><button type="submit">Order</button></form>
</td></tr>
"""


def missing_upstreams() -> list[str]:
    names = [f"{service}_SERVICE_{part}" for service in UPSTREAMS for part in ("HOST", "PORT")]
    return [name for name in names if not os.environ.get(name)]


if __name__ == "__main__":
    if missing := missing_upstreams():  # fail at start, not on the first request
        log("error", msg="missing environment: " + ", ".join(missing))
        sys.exit(2)
    serve(
        [
            ("GET", "/", index),
            ("POST", "/order", order_form),
            ("GET", "/api/products", api_products),
            ("GET", "/api/orders", api_orders),
            ("POST", "/api/orders", api_create_order),
        ]
    )
