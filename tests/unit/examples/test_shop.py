"""The shop example's services, run as plain processes (no Docker): what the rollout tests and
the demo rely on. Every process is started on a free 127.0.0.1 port and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import ProxyHandler, Request, build_opener

import pytest

from conveyor.testing.net import free_port

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"
SERVICES = ("gateway", "catalog", "orders")
# test traffic goes straight to 127.0.0.1, whatever proxy the environment names
OPENER = build_opener(ProxyHandler({}))
# variables that change the apps' behaviour; each test sets the ones it wants
APP_VARS = ("APP_VERSION", "CONVEYOR_REPLICA", "FAIL_HEALTH", "CRASH_AFTER", "HOST")


@dataclass
class App:
    service: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text()
        complete = text[: text.rfind("\n") + 1]  # a line being written is not one yet
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def requests_logged(self, at_least: int = 1) -> list[dict[str, Any]]:
        """The request lines, once there are `at_least` of them: a service logs a request
        after sending its reply, so the client may read the reply before the line is out."""
        deadline = time.monotonic() + 5
        while True:
            lines = [line for line in self.log_lines() if "method" in line]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, doc: Any = None, *, form: str | None = None, timeout: float = 30
) -> Reply:
    data, ctype = None, "application/json"
    if doc is not None:
        data = json.dumps(doc).encode()
    if form is not None:
        data, ctype = form.encode(), "application/x-www-form-urlencoded"
    request = Request(url, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with OPENER.open(request, timeout=timeout) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read())
    except HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


Starter = Callable[..., App]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    """start(service, **env) runs examples/shop/<service>/app.py and waits until it listens."""
    started: list[App] = []

    def _start(service: str, *, wait: bool = True, **env: str) -> App:
        port = free_port()
        log = tmp_path / f"{service}-{port}.log"
        base = {k: v for k, v in os.environ.items() if k not in APP_VARS}
        base.update(PORT=str(port), ORDERS_DB=str(tmp_path / "orders.db"))
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(SHOP / service / "app.py")],
                env={**base, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        app = App(service, port, proc, log)
        started.append(app)
        if wait:
            wait_listening(app)
        return app

    yield _start
    for app in started:
        stop(app.proc)


def wait_listening(app: App, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            pytest.fail(f"{app.service} exited {app.proc.returncode}: {app.log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", app.port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"{app.service} did not listen on {app.port}: {app.log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def shop(start: Starter) -> dict[str, App]:
    """The three services wired together the way Conveyor announces them."""
    catalog = start("catalog")
    orders = start("orders")
    gateway = start("gateway", **service_env(catalog, orders))
    return {"gateway": gateway, "catalog": catalog, "orders": orders}


def service_env(catalog: App, orders: App) -> dict[str, str]:
    return {
        "CATALOG_SERVICE_HOST": "127.0.0.1",
        "CATALOG_SERVICE_PORT": str(catalog.port),
        "ORDERS_SERVICE_HOST": "127.0.0.1",
        "ORDERS_SERVICE_PORT": str(orders.port),
    }


def start_service(start: Starter, service: str, **env: str) -> App:
    """Any one service alone; the gateway gets addresses that nothing answers on."""
    if service == "gateway":
        for name in ("CATALOG", "ORDERS"):
            env.setdefault(f"{name}_SERVICE_HOST", "127.0.0.1")
            env.setdefault(f"{name}_SERVICE_PORT", str(free_port()))
    return start(service, **env)


# --- catalog -----------------------------------------------------------------------------


def test_catalog_lists_products_and_finds_one_by_id(start: Starter) -> None:
    catalog = start("catalog")
    products = http("GET", catalog.url("/products")).json()["products"]
    assert len(products) >= 3
    assert {"id", "name", "price_cents", "stock"} <= set(products[0])
    one = http("GET", catalog.url(f"/products/{products[1]['id']}"))
    assert one.status == 200
    assert one.json() == products[1]


def test_catalog_answers_404_for_an_unknown_product_or_route(start: Starter) -> None:
    catalog = start("catalog")
    assert http("GET", catalog.url("/products/no-such-thing")).status == 404
    assert http("GET", catalog.url("/nowhere")).status == 404
    assert http("POST", catalog.url("/products"), {}).status == 404


# --- the shop end to end: gateway -> catalog / orders -------------------------------------


def test_an_order_placed_at_the_gateway_is_stored_and_lowers_the_stock(
    shop: dict[str, App],
) -> None:
    gateway = shop["gateway"]
    products = http("GET", gateway.url("/api/products")).json()["products"]
    grinder = next(p for p in products if p["id"] == "burr-grinder")

    created = http(
        "POST", gateway.url("/api/orders"), {"product_id": "burr-grinder", "quantity": 3}
    )

    assert created.status == 201, created.body
    order = created.json()
    assert order["product_id"] == "burr-grinder"
    assert order["quantity"] == 3
    assert http("GET", gateway.url("/api/orders")).json()["orders"] == [
        {k: order[k] for k in ("id", "product_id", "quantity", "created_at", "replica")}
    ]
    assert http("GET", shop["orders"].url("/orders")).json()["orders"][0]["id"] == order["id"]
    page = http("GET", gateway.url("/"))
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    row = page.body.decode().split('id="product-burr-grinder"')[1].split("</tr>")[0]
    assert f'class="stock">{grinder["stock"] - 3}<' in row


def test_the_request_id_follows_an_order_through_the_services(shop: dict[str, App]) -> None:
    created = http(
        "POST", shop["gateway"].url("/api/orders"), {"product_id": "paper-filters", "quantity": 1}
    )
    request_id = created.headers["X-Request-ID"]
    for service in ("gateway", "catalog", "orders"):
        seen = {line["request_id"] for line in shop[service].requests_logged()}
        assert request_id in seen, service


def test_the_gateway_refuses_unknown_products_overselling_and_bad_bodies(
    shop: dict[str, App],
) -> None:
    orders_url = shop["gateway"].url("/api/orders")
    assert http("POST", orders_url, {"product_id": "unicorn", "quantity": 1}).status == 422
    oversold = http("POST", orders_url, {"product_id": "burr-grinder", "quantity": 9})
    assert oversold.status == 409
    assert "stock" in oversold.json()["error"]
    assert http("POST", orders_url, {"product_id": "burr-grinder", "quantity": 0}).status == 400
    assert http("POST", orders_url, ["not", "an", "object"]).status == 400
    assert http("GET", orders_url).json()["orders"] == []


@pytest.mark.parametrize("quantity", [0, -1, "2", True, 101, None])
def test_orders_refuses_a_quantity_that_is_not_a_small_positive_integer(
    start: Starter, quantity: Any
) -> None:
    orders = start("orders")
    reply = http("POST", orders.url("/orders"), {"product_id": "x", "quantity": quantity})
    assert reply.status == 400
    assert http("GET", orders.url("/orders")).json()["orders"] == []


def test_the_html_form_places_an_order(shop: dict[str, App]) -> None:
    page = http(
        "POST", shop["gateway"].url("/order"), form="product_id=gooseneck-kettle&quantity=2"
    )
    assert page.status == 201
    assert "placed" in page.body.decode()
    assert http("GET", shop["orders"].url("/orders")).json()["orders"][0]["quantity"] == 2


def test_two_orders_replicas_share_one_database(start: Starter) -> None:
    replicas = [start("orders", CONVEYOR_REPLICA=f"orders-{i}") for i in (1, 2)]

    def place(i: int) -> int:
        doc = {"product_id": "espresso-beans", "quantity": 1 + i % 3}
        return http("POST", replicas[i % 2].url("/orders"), doc).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(place, range(60)))

    assert statuses == [201] * 60
    for replica in replicas:
        stored = http("GET", replica.url("/orders")).json()["orders"]
        assert len({o["id"] for o in stored}) == 60
        assert {o["replica"] for o in stored} == {"orders-1", "orders-2"}


def test_the_gateway_answers_502_quickly_when_a_dependency_is_down(start: Starter) -> None:
    gateway = start_service(start, "gateway")
    began = time.monotonic()
    reply = http("GET", gateway.url("/api/products"))
    assert reply.status == 502
    assert "catalog" in reply.json()["error"]
    assert time.monotonic() - began < 2.5
    # /health checks nothing downstream: the gateway itself is fine
    assert http("GET", gateway.url("/health")).status == 200


def test_the_gateway_refuses_to_start_without_the_service_addresses(start: Starter) -> None:
    gateway = start("gateway", wait=False)
    assert gateway.proc.wait(timeout=30) == 2
    assert "CATALOG_SERVICE_HOST" in gateway.log.read_text()


# --- what every service offers the platform -----------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_health_version_and_metrics(start: Starter, service: str) -> None:
    app = start_service(start, service, APP_VERSION="2.3.4", CONVEYOR_REPLICA=f"{service}-7")
    assert http("GET", app.url("/health")).status == 200
    assert http("GET", app.url("/version")).json() == {
        "service": service,
        "version": "2.3.4",
        "replica": f"{service}-7",
    }
    http("GET", app.url("/no/such/path/123"))
    counted = 'http_requests_total{method="GET",path="/health",status="200"} 1.0'
    # a request is counted after its reply is sent: a busy machine may show /metrics first
    wait_until(lambda: counted in http("GET", app.url("/metrics")).body.decode())
    metrics = http("GET", app.url("/metrics"))
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.body.decode()
    assert counted in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",path="/version"}' in text
    # unknown paths share one label, so a scanner cannot blow up the series count
    assert 'path="other",status="404"' in text
    assert "/no/such/path" not in text


def test_version_defaults_to_1_0_0_and_the_hostname(start: Starter) -> None:
    catalog = start("catalog")
    assert http("GET", catalog.url("/version")).json() == {
        "service": "catalog",
        "version": "1.0.0",
        "replica": socket.gethostname(),
    }


@pytest.mark.parametrize("service", SERVICES)
def test_fail_health_makes_health_answer_503(start: Starter, service: str) -> None:
    app = start_service(start, service, FAIL_HEALTH="1")
    assert http("GET", app.url("/health")).status == 503
    assert http("GET", app.url("/version")).status == 200  # only the probe fails


def test_crash_after_makes_the_process_exit_1(start: Starter) -> None:
    catalog = start("catalog", CRASH_AFTER="0.5")
    assert http("GET", catalog.url("/health")).status == 200
    assert catalog.proc.wait(timeout=30) == 1
    assert "CRASH_AFTER" in catalog.log_lines()[-1]["msg"]


def test_a_missing_port_stops_the_service_at_once(start: Starter) -> None:
    catalog = start("catalog", wait=False, PORT="")
    assert catalog.proc.wait(timeout=30) == 2
    assert "PORT" in catalog.log.read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_sigterm_exits_0(start: Starter, service: str) -> None:
    app = start_service(start, service)
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(timeout=30) == 0
    assert app.log_lines()[-1]["msg"] == "stopped"


def test_sigterm_stops_accepting_but_finishes_the_request_in_flight(start: Starter) -> None:
    catalog = start("catalog")
    idle_threads = thread_count(catalog.proc.pid)
    with socket.create_connection(("127.0.0.1", catalog.port)) as conn:
        conn.sendall(b"GET /products HTTP/1.0\r\n")  # half a request: it is in flight
        # the server runs a thread per connection: once it exists, the connection is accepted
        wait_until(lambda: thread_count(catalog.proc.pid) > idle_threads)
        catalog.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not accepts(catalog.port))
        assert catalog.proc.poll() is None, "exited before answering the request in flight"
        conn.sendall(b"Host: 127.0.0.1\r\n\r\n")
        response = b"".join(iter(lambda: conn.recv(65536), b""))
    assert response.startswith(b"HTTP/1.0 200")
    assert b"burr-grinder" in response
    assert catalog.proc.wait(timeout=30) == 0


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the listener closed with this connect still in its backlog (not accepting).
        return False
    return True


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.02)


def test_one_json_log_line_per_request(start: Starter) -> None:
    catalog = start("catalog", CONVEYOR_REPLICA="catalog-1")
    http("GET", catalog.url("/products"))
    http("GET", catalog.url("/products/nope"))
    lines = catalog.requests_logged(at_least=2)
    assert [(line["path"], line["status"], line["level"]) for line in lines] == [
        ("/products", 200, "info"),
        ("/products/nope", 404, "warning"),
    ]
    for line in lines:
        assert line["service"] == "catalog"
        assert line["replica"] == "catalog-1"
        assert line["method"] == "GET"
        assert isinstance(line["duration_ms"], float)
        assert line["ts"].endswith("+00:00")


def common_block(service: str) -> str:
    source = (SHOP / service / "app.py").read_text()
    return source[source.index("# --- common:") : source.index("# --- end of common ---")]


def test_the_common_part_is_the_same_in_every_service() -> None:
    """Each service is its own build context, so the shared part is copied: keep it in sync."""
    blocks = {service: common_block(service) for service in SERVICES}
    assert blocks["gateway"] == blocks["catalog"] == blocks["orders"]
