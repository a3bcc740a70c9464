"""HAProxyRouter against the real haproxy binary and Python HTTP replicas on 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest

from conveyor.errors import RouterError
from conveyor.model.endpoint import Endpoint
from conveyor.router.haproxy import HAProxyRouter
from conveyor.router.protocol import Frontend, RouterConfig, ServerEntry, ServerStatus

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")


class Backend(Protocol):
    """A replica from the `start_backend` fixture (conftest.py)."""

    name: str
    port: int

    def kill(self) -> None: ...


WAIT = 20.0  # bound on every wait; a test fails when it is reached, nothing asserts speed


def get(port: int, path: str = "/") -> tuple[int, str]:
    """One request on a fresh connection, like a client without keep-alive."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def bodies(port: int, count: int) -> list[str]:
    answers = [get(port) for _ in range(count)]
    assert all(status == 200 for status, _ in answers), answers
    return [body for _, body in answers]


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {WAIT}s: {what}")
        time.sleep(0.05)


def web(port: int, *servers: ServerEntry, service: str = "web") -> Frontend:
    return Frontend(
        service=service, port=port, check_path="/health", check_interval=0.1, servers=servers
    )


def entry(backend: Backend, **kwargs: object) -> ServerEntry:
    return ServerEntry.model_validate(
        {"name": backend.name, "endpoint": Endpoint.loopback(backend.port), **kwargs}
    )


def status_of(router: HAProxyRouter, service: str, server: str) -> ServerStatus | None:
    found = [s for s in router.servers() if (s.backend, s.server) == (service, server)]
    return found[0] if found else None


def sees(port: int, names: set[str]) -> Callable[[], bool]:
    """A condition: a few requests reach every one of `names`."""
    return lambda: names <= set(bodies(port, 2 * len(names) + 2))


class Load:
    """Sequential requests from a thread until stopped: each on a new connection, or with
    `keepalive` on one connection (a new one only after a failure)."""

    def __init__(self, port: int, *, keepalive: bool = False) -> None:
        self.port = port
        self.keepalive = keepalive
        self._conn: http.client.HTTPConnection | None = None
        self.done = 0
        self.failures: list[str] = []
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.done < 5000:
            try:
                status, body = self._get()
                if status == 200:
                    self.seen.add(body)
                else:
                    self.failures.append(f"HTTP {status}: {body[:80]}")
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(repr(e))
            self.done += 1

    def _get(self) -> tuple[int, str]:
        if not self.keepalive:
            return get(self.port)
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            self._conn.request("GET", "/")
            response = self._conn.getresponse()
            return response.status, response.read().decode()
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._conn is not None:
            self._conn.close()

    def wait_for(self, more: int) -> None:
        target = self.done + more
        eventually(lambda: self.done >= target or not self._thread.is_alive(), f"{more} requests")


@pytest.fixture
def two(start_backend: Callable[[str], Backend]) -> Iterator[tuple[Backend, Backend]]:
    yield start_backend("a"), start_backend("b")


def test_ensure_starts_haproxy_and_stop_ends_it(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, _ = two
    port = new_port()
    assert not router.running()

    router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))

    assert router.running()
    assert get(port) == (200, "a")
    router.stop()
    assert not router.running()
    with pytest.raises(OSError):
        get(port)


def test_add_server_puts_a_replica_in_rotation(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, b = two
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))

    router.add_server("web", entry(b))

    eventually(sees(port, {"a", "b"}), "both replicas answer")
    assert {(s.server, s.admin_state) for s in router.servers()} == {("a", "ready"), ("b", "ready")}
    eventually(lambda: all(s.operational == "up" for s in router.servers()), "both checks up")


def test_set_weight_zero_stops_new_requests_and_back(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, b = two
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a), entry(b)),)))
    eventually(sees(port, {"a", "b"}), "both replicas answer")

    router.set_weight("web", "b", 0)
    assert set(bodies(port, 10)) == {"a"}
    b_now = status_of(router, "web", "b")
    assert b_now is not None and (b_now.weight, b_now.admin_state) == (0, "ready")

    router.set_weight("web", "b", 100)
    eventually(sees(port, {"a", "b"}), "b back in rotation")
    assert [s.weight for s in router.servers()] == [100, 100]


def test_drain_lets_running_requests_finish_and_sends_no_new_ones(
    router: HAProxyRouter,
    two: tuple[Backend, Backend],
    new_port: Callable[[], int],
    release_file: Path,
) -> None:
    a, b = two
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a), entry(b)),)))
    eventually(lambda: all(s.operational == "up" for s in router.servers()), "both checks up")

    with ThreadPoolExecutor(2) as pool:
        # Round robin sends one of the two waiting requests to each replica.
        slow = [pool.submit(get, port, "/slow") for _ in range(2)]
        eventually(
            lambda: all(s.sessions == 1 for s in router.servers()), "one session per replica"
        )

        router.set_state("web", "b", "drain")

        drained = status_of(router, "web", "b")
        assert drained is not None
        assert (drained.admin_state, drained.sessions) == ("drain", 1)
        assert set(bodies(port, 10)) == {"a"}
        release_file.touch()
        assert sorted(f.result(timeout=WAIT) for f in slow) == [(200, "a"), (200, "b")]
    eventually(lambda: status_of(router, "web", "b") is not None, "b still listed")
    eventually(lambda: getattr(status_of(router, "web", "b"), "sessions", 1) == 0, "b idle")


def test_remove_server_takes_it_out_and_missing_is_fine(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, b = two
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))
    router.add_server("web", entry(b))
    eventually(sees(port, {"a", "b"}), "both replicas answer")

    router.remove_server("web", "b")

    assert [s.server for s in router.servers()] == ["a"]
    assert set(bodies(port, 10)) == {"a"}
    router.remove_server("web", "b")
    router.remove_server("nosuchservice", "b")


def test_killed_replica_under_load_loses_no_request_and_shows_down(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, b = two
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))
    router.add_server("web", entry(b))
    eventually(sees(port, {"a", "b"}), "both replicas answer")

    with Load(port) as load:
        load.wait_for(50)
        b.kill()
        load.wait_for(250)

    assert load.failures == []
    assert load.seen == {"a", "b"}
    eventually(
        lambda: getattr(status_of(router, "web", "b"), "operational", "") == "down",
        "b reported down",
    )


def test_dead_replica_leaves_fast_after_a_refusal_and_stays_down_through_reload(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, b = two
    port, api_port = new_port(), new_port()
    # Regular checks a minute apart: what takes b out quickly is the refused connection,
    # which switches b's checks to `fastinter`; the survivor is never marked down.
    slow_checks = Frontend(
        service="web", port=port, check_path="/health", check_interval=60.0, servers=()
    )
    first = RouterConfig(frontends=(slow_checks,))
    router.ensure(first)
    router.add_server("web", entry(a))
    router.add_server("web", entry(b))
    eventually(sees(port, {"a", "b"}), "both replicas answer")

    b.kill()
    assert set(bodies(port, 4)) == {"a"}  # retried on a, not failed
    eventually(
        lambda: getattr(status_of(router, "web", "b"), "operational", "") == "down",
        "b marked down by its fast checks",
    )
    alive = status_of(router, "web", "a")
    assert alive is not None and alive.operational == "up"

    router.ensure(RouterConfig(frontends=(slow_checks, web(api_port, service="api"))))

    # The server-state file carried "down" into the new worker (no check has run since).
    after = status_of(router, "web", "b")
    assert after is not None
    assert after.operational == "down"


def test_adding_a_frontend_reloads_hitlessly_and_keeps_runtime_servers(
    router: HAProxyRouter, start_backend: Callable[[str], Backend], new_port: Callable[[], int]
) -> None:
    a, b, c, d = (start_backend(name) for name in "abcd")
    web_port, api_port = new_port(), new_port()
    first = RouterConfig(frontends=(web(web_port, entry(a)),))
    router.ensure(first)
    router.add_server("web", entry(b))
    router.add_server("web", entry(c, state="drain"))
    eventually(sees(web_port, {"a", "b"}), "a and b answer")

    second = RouterConfig(frontends=(*first.frontends, web(api_port, entry(d), service="api")))
    with Load(web_port) as load:
        load.wait_for(30)
        router.ensure(second)
        load.wait_for(100)

    assert load.failures == []
    assert get(api_port) == (200, "d")
    states = {(s.backend, s.server): s.admin_state for s in router.servers()}
    assert states == {
        ("web", "a"): "ready",
        ("web", "b"): "ready",
        ("web", "c"): "drain",
        ("api", "d"): "ready",
    }
    assert "c" not in bodies(web_port, 10)
    # The drained server kept its weight through the reload: ready again means traffic again.
    router.set_state("web", "c", "ready")
    eventually(sees(web_port, {"a", "b", "c"}), "c back in rotation")


def test_ensure_with_same_frontends_applies_config_servers_without_reload(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, b = two
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))

    with Load(port) as load:
        load.wait_for(10)
        router.ensure(RouterConfig(frontends=(web(port, entry(a, state="drain"), entry(b)),)))
        load.wait_for(20)

    assert load.failures == []
    states = {s.server: s.admin_state for s in router.servers()}
    assert states == {"a": "drain", "b": "ready"}
    assert set(bodies(port, 10)) == {"b"}


def test_config_server_in_maint_gets_traffic_once_ready(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, b = two
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a), entry(b, state="maint")),)))

    maint = status_of(router, "web", "b")
    assert maint is not None
    assert (maint.admin_state, maint.operational) == ("maint", "unknown")
    assert set(bodies(port, 10)) == {"a"}

    router.set_state("web", "b", "ready")
    eventually(sees(port, {"a", "b"}), "b in rotation")


def test_ensure_after_sigkill_restarts_with_recorded_servers(
    router: HAProxyRouter,
    start_backend: Callable[[str], Backend],
    new_port: Callable[[], int],
    run_dir: Path,
) -> None:
    a, b, c = (start_backend(name) for name in "abc")
    port = new_port()
    config = RouterConfig(frontends=(web(port, entry(a)),))
    router.ensure(config)
    router.add_server("web", entry(b))
    router.add_server("web", entry(c, state="drain"))

    os.kill(int((run_dir / "haproxy.pid").read_text()), signal.SIGKILL)
    eventually(lambda: not router.running(), "HAProxy gone")
    eventually(lambda: _refused(port), "the worker exited with its master")

    router.ensure(config)

    assert router.running()
    states = {s.server: s.admin_state for s in router.servers()}
    assert states == {"a": "ready", "b": "ready", "c": "drain"}
    eventually(sees(port, {"a", "b"}), "a and b answer")
    assert "c" not in bodies(port, 10)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_on_a_used_port_names_the_port(
    router: HAProxyRouter, new_port: Callable[[], int]
) -> None:
    port = new_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(RouterError, match=f"frontend web: cannot bind 127.0.0.1:{port}"):
            router.ensure(RouterConfig(frontends=(web(port),)))
    assert not router.running()


def test_start_refuses_a_port_a_stale_haproxy_holds(
    router: HAProxyRouter, new_port: Callable[[], int]
) -> None:
    """HAProxy binds with SO_REUSEPORT, so a second one on the same port would silently share
    the traffic; Conveyor refuses to start instead."""
    port = new_port()
    stale = HAProxyRouter(Path(tempfile.mkdtemp(prefix="cvs-", dir="/tmp")) / "h")
    stale.ensure(RouterConfig(frontends=(web(port),)))
    try:
        with pytest.raises(RouterError, match=f"cannot bind 127.0.0.1:{port}"):
            router.ensure(RouterConfig(frontends=(web(port),)))
    finally:
        stale.stop()


def test_reload_onto_a_used_port_fails_and_keeps_serving(
    router: HAProxyRouter, two: tuple[Backend, Backend], new_port: Callable[[], int]
) -> None:
    a, _ = two
    port, used = new_port(), new_port()
    first = RouterConfig(frontends=(web(port, entry(a)),))
    router.ensure(first)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", used))
        taken.listen()
        with pytest.raises(RouterError, match=f"cannot bind 127.0.0.1:{used}"):
            router.ensure(RouterConfig(frontends=(*first.frontends, web(used, service="api"))))

    assert router.running()
    assert get(port) == (200, "a")


def test_reload_failing_inside_haproxy_keeps_serving_and_recovers(
    router: HAProxyRouter,
    two: tuple[Backend, Backend],
    new_port: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    run_dir: Path,
) -> None:
    """The master's own failure path, which the port pre-check normally hides: HAProxy keeps
    the old worker, the error says so, and a later ensure() reloads fine."""
    import conveyor.router.haproxy as adapter

    monkeypatch.setattr(adapter, "_check_new_ports_free", lambda *args: None)
    a, _ = two
    port, used = new_port(), new_port()
    first = RouterConfig(frontends=(web(port, entry(a)),))
    router.ensure(first)
    running_config = (run_dir / "haproxy.cfg").read_text()
    second = RouterConfig(frontends=(*first.frontends, web(used, entry(a), service="api")))

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", used))
        taken.listen()
        with pytest.raises(RouterError, match="failed to reload"):
            router.ensure(second)
        assert (run_dir / "haproxy.cfg").read_text() == running_config
        assert get(port) == (200, "a")

    router.ensure(second)
    assert get(used) == (200, "a")


@pytest.mark.parametrize(
    ("server", "check_path", "message"),
    [
        # HAProxy's own message from `haproxy -c`
        (
            ServerEntry(name="a", endpoint=Endpoint.loopback(1), weight=300),
            "/health",
            "weight of server a is not within",
        ),
        # refused before HAProxy sees it: HAProxy would accept "GET /a b" (b as HTTP version)
        (
            ServerEntry(name="a", endpoint=Endpoint.loopback(1)),
            "/a b",
            "check path '/a b' must start with '/'",
        ),
    ],
    ids=["weight-out-of-range", "check-path-with-space"],
)
def test_invalid_config_raises_router_error(
    router: HAProxyRouter,
    new_port: Callable[[], int],
    server: ServerEntry,
    check_path: str,
    message: str,
) -> None:
    frontend = Frontend(service="web", port=new_port(), check_path=check_path, servers=(server,))
    with pytest.raises(RouterError, match=message):
        router.ensure(RouterConfig(frontends=(frontend,)))
    assert not router.running()


def test_runtime_commands_on_unknown_servers_raise(
    router: HAProxyRouter, new_port: Callable[[], int]
) -> None:
    router.ensure(RouterConfig(frontends=(web(new_port()),)))
    with pytest.raises(RouterError, match="No such server"):
        router.set_state("web", "ghost", "drain")
    with pytest.raises(RouterError, match="no frontend for service 'api'"):
        router.add_server("api", ServerEntry(name="x", endpoint=Endpoint.loopback(1)))


# ---- keep-alive to replicas ------------------------------------------------------------------


def _admin(router: HAProxyRouter, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(router.admin_socket))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def stats(router: HAProxyRouter, service: str, server: str) -> dict[str, str]:
    """The `show stat` row of a server of a service's backend (server "BACKEND": the backend)."""
    lines = _admin(router, "show stat").splitlines()
    header = lines[0].removeprefix("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if (row.get("pxname"), row.get("svname")) == (f"be_{service}", server):
            return row
    raise AssertionError(f"no server {service}/{server} in show stat")


def server_connections(router: HAProxyRouter, service: str, server: str) -> tuple[int, int]:
    """(connections HAProxy opened to a server, requests it sent over a reused one)."""
    row = stats(router, service, server)
    return int(row["connect"]), int(row["reuse"])


def idle_connections(router: HAProxyRouter, service: str, server: str) -> int:
    """Connections to a server in HAProxy's idle pool (`show servers conn`, column idle_cur)."""
    lines = _admin(router, f"show servers conn be_{service}").splitlines()
    header = lines[0].removeprefix("# ").split()
    for line in lines[1:]:
        row = dict(zip(header, line.split(), strict=False))
        if row.get("bkname/svname") == f"be_{service}/{server}":
            return int(row["idle_cur"])
    raise AssertionError(f"no server {service}/{server} in show servers conn")


@pytest.mark.parametrize("added_at_run_time", [True, False], ids=["add-server", "config-file"])
def test_requests_reuse_the_connection_to_their_replica(
    router: HAProxyRouter,
    start_backend: Callable[..., Backend],
    new_port: Callable[[], int],
    added_at_run_time: bool,
) -> None:
    """A server added at run time gets the idle-connection pool a server of the file has
    (HAProxy 2.6 gives it none of its own accord: each request then opened a connection)."""
    a = start_backend("a", "keep")
    port = new_port()
    if added_at_run_time:
        router.ensure(RouterConfig(frontends=(web(port),)))
        router.add_server("web", entry(a))
    else:
        router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))
    eventually(lambda: get(port) == (200, "a"), "a answers")
    opened, reused = server_connections(router, "web", "a")

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(50):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"a")
    finally:
        conn.close()

    opened_after, reused_after = server_connections(router, "web", "a")
    assert opened_after - opened <= 1
    assert reused_after - reused >= 49


def test_drain_sends_no_new_request_over_a_kept_connection(
    router: HAProxyRouter, start_backend: Callable[..., Backend], new_port: Callable[[], int]
) -> None:
    """A keep-alive client whose session holds a connection to the drained replica: its next
    requests still go where the balancing sends them, never to the drained one."""
    a, b = start_backend("a", "keep"), start_backend("b", "keep")
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a), entry(b)),)))
    eventually(sees(port, {"a", "b"}), "both replicas answer")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def answers(count: int) -> list[str]:
        out = []
        for _ in range(count):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200
            out.append(response.read().decode())
        return out

    try:
        assert set(answers(10)) == {"a", "b"}
        router.set_state("web", "b", "drain")
        assert set(answers(20)) == {"a"}
    finally:
        conn.close()


@pytest.mark.parametrize("client_keepalive", [False, True], ids=["new-connections", "keep-alive"])
def test_killed_replica_with_kept_alive_connections_loses_no_request(
    router: HAProxyRouter,
    start_backend: Callable[..., Backend],
    new_port: Callable[[], int],
    client_keepalive: bool,
) -> None:
    a, b = start_backend("a", "keep"), start_backend("b", "keep")
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))
    router.add_server("web", entry(b))
    eventually(sees(port, {"a", "b"}), "both replicas answer")

    with Load(port, keepalive=client_keepalive) as load:
        load.wait_for(50)
        assert server_connections(router, "web", "b")[1] > 0  # b's connections are reused
        b.kill()
        load.wait_for(250)

    assert load.failures == []
    assert load.seen == {"a", "b"}
    eventually(
        lambda: getattr(status_of(router, "web", "b"), "operational", "") == "down",
        "b reported down",
    )


def test_remove_server_with_idle_connections(
    router: HAProxyRouter, start_backend: Callable[..., Backend], new_port: Callable[[], int]
) -> None:
    """`del server` is refused while a server has idle connections; putting it in maintenance
    first (as remove_server does) closes them."""
    a, b = start_backend("a", "keep"), start_backend("b", "keep")
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a)),)))
    router.add_server("web", entry(b))
    eventually(sees(port, {"a", "b"}), "both replicas answer")
    # HAProxy halves idle pools every purge delay: ask again until b holds one right now
    eventually(
        lambda: "b" in bodies(port, 4) and idle_connections(router, "web", "b") > 0,
        "b to have an idle connection",
    )

    router.remove_server("web", "b", cut_sessions=False)

    assert [s.server for s in router.servers()] == ["a"]
    assert set(bodies(port, 10)) == {"a"}


def test_replica_closing_kept_alive_connections_loses_no_request(
    router: HAProxyRouter, start_backend: Callable[..., Backend], new_port: Callable[[], int]
) -> None:
    """A replica that closes a connection HAProxy keeps for reuse (its keep-alive timeout ending
    as the next request comes): a request that meets the closed connection is retried."""
    a, b = start_backend("a", "drop"), start_backend("b", "drop")
    port = new_port()
    router.ensure(RouterConfig(frontends=(web(port, entry(a), entry(b)),)))
    eventually(sees(port, {"a", "b"}), "both replicas answer")

    with Load(port, keepalive=True) as load:
        load.wait_for(300)

    assert load.failures == []
    assert load.seen == {"a", "b"}
    assert int(stats(router, "web", "BACKEND")["wretr"]) > 0  # closed connections were met
