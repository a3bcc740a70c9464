"""render(): data-driven cases over the rendered sections, and every rendered file passes
`haproxy -c` (skipped where HAProxy is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import RouterError
from conveyor.model.endpoint import Endpoint
from conveyor.model.routing import Bind, Listener
from conveyor.render.haproxy import MAX_SOCKET_PATH, check_socket_paths, render
from conveyor.router.haproxy import HAProxyRouter
from conveyor.router.protocol import Frontend, RouterConfig, ServerEntry

HAPROXY = shutil.which("haproxy")
SERVER_ARGS = (
    "observe layer4 error-limit 1 on-error fastinter slowstart 0 "
    "pool-max-conn -1 pool-purge-delay 5s"
)


def sections(text: str) -> dict[str, list[str]]:
    """Section header -> its lines, stripped; comments and blank lines left out."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            current.append(line.strip())
        else:
            current = result.setdefault(line, [])
    return result


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Short: the socket paths in the file must stay within HAProxy's 97-byte limit for -c.
    path = Path(tempfile.mkdtemp(prefix="cvr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def haproxy_check(text: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    assert HAPROXY is not None
    config = run_dir / "haproxy.cfg"
    config.write_text(text)
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )


WEB = Frontend(service="web", port=18080)
# what every HTTP frontend adds: its requests logged for their latency
LOGGED = ["log global", 'log-format "%ft %b %s %ST %Ta"']

CASES: list[tuple[str, RouterConfig, dict[str, list[str]]]] = [
    (
        "tcp-check-defaults",
        RouterConfig(frontends=(WEB,)),
        {
            "frontend fe_web": ["bind 127.0.0.1:18080", *LOGGED, "default_backend be_web"],
            "backend be_web": [
                "balance roundrobin",
                f"default-server inter 250ms fastinter 50ms fall 2 rise 1 {SERVER_ARGS}",
            ],
        },
    ),
    (
        "http-check-and-check-settings",
        RouterConfig(
            frontends=(
                Frontend(
                    service="api_v2-x",
                    port=18081,
                    check_path="/healthz?full=1",
                    check_interval=1.5,
                    check_fall=3,
                    check_rise=2,
                    balance="leastconn",
                ),
            )
        ),
        {
            "frontend fe_api_v2-x": [
                "bind 127.0.0.1:18081",
                *LOGGED,
                "default_backend be_api_v2-x",
            ],
            "backend be_api_v2-x": [
                "balance leastconn",
                "option httpchk GET /healthz?full=1",
                "http-check expect status 200-399",
                f"default-server inter 1500ms fastinter 50ms fall 3 rise 2 {SERVER_ARGS}",
            ],
        },
    ),
    (
        "servers-in-each-state",
        RouterConfig(
            frontends=(
                WEB.model_copy(
                    update={
                        "servers": (
                            ServerEntry(name="web-1", endpoint=Endpoint.loopback(19001)),
                            ServerEntry(
                                name="web-2",
                                endpoint=Endpoint.loopback(19002),
                                state="drain",
                                weight=50,
                            ),
                            ServerEntry(
                                name="web_3",
                                endpoint=Endpoint.loopback(19003),
                                state="maint",
                                weight=7,
                            ),
                        )
                    }
                ),
            )
        ),
        {
            "frontend fe_web": ["bind 127.0.0.1:18080", *LOGGED, "default_backend be_web"],
            "backend be_web": [
                "balance roundrobin",
                f"default-server inter 250ms fastinter 50ms fall 2 rise 1 {SERVER_ARGS}",
                "server web-1 127.0.0.1:19001 check weight 100",
                # the file has no drain: weight 0 until the adapter sets drain at run time
                "server web-2 127.0.0.1:19002 check weight 0",
                "server web_3 127.0.0.1:19003 check weight 7 disabled",
            ],
        },
    ),
    (
        "stats-and-two-services-sorted",
        RouterConfig(
            frontends=(WEB, Frontend(service="api", port=18082, check_interval=0.0001)),
            stats_port=18090,
        ),
        {
            "frontend fe_api": ["bind 127.0.0.1:18082", *LOGGED, "default_backend be_api"],
            "backend be_api": [
                "balance roundrobin",
                f"default-server inter 1ms fastinter 50ms fall 2 rise 1 {SERVER_ARGS}",
            ],
            "frontend fe_web": ["bind 127.0.0.1:18080", *LOGGED, "default_backend be_web"],
            "backend be_web": [
                "balance roundrobin",
                f"default-server inter 250ms fastinter 50ms fall 2 rise 1 {SERVER_ARGS}",
            ],
            "frontend stats": [
                "bind 127.0.0.1:18090",
                "stats enable",
                "stats uri /stats",
                "http-request use-service prometheus-exporter if { path /metrics }",
            ],
        },
    ),
    ("no-frontends", RouterConfig(), {}),
    (
        "project-networks-tcp-and-http-ports",
        # a database served by name (inside its address's namespace, where `db` resolves),
        # published on loopback, with a second HTTP port; servers at each backend's port
        RouterConfig(
            frontends=(
                Frontend(
                    service="db",
                    port=18200,
                    mode="tcp",
                    target=5432,
                    binds=(
                        Bind(port=5432, namespace="cv-test-db", netns="/proc/self/ns/net"),
                        Bind(address="127.0.0.1", port=15432),
                        Bind(address="::1", port=15432),
                    ),
                    listeners=(
                        Listener(
                            port=8008,
                            mode="http",
                            binds=(Bind(port=8008, namespace="cv-test-db"),),
                        ),
                    ),
                    servers=(
                        ServerEntry(name="db-1-1", endpoint=Endpoint(host="10.213.0.5", port=5432)),
                    ),
                ),
            )
        ),
        {
            "frontend fe_db": [
                "bind 127.0.0.1:18200",
                "bind 127.0.0.1:15432",
                "bind ipv6@::1:15432",
                "mode tcp",
                "timeout client 1h",
                "default_backend be_db",
            ],
            # callers by name get a frontend of their own: its statistics are theirs
            "frontend in_db": [
                "bind 0.0.0.0:5432 namespace cv-test-db",
                "mode tcp",
                "timeout client 1h",
                "default_backend be_db",
            ],
            "backend be_db": [
                "mode tcp",
                "timeout server 1h",
                "balance roundrobin",
                f"default-server inter 250ms fastinter 50ms fall 2 rise 1 {SERVER_ARGS}",
                "server db-1-1 10.213.0.5:5432 check weight 100",
            ],
            "frontend in_db_8008": [
                "bind 0.0.0.0:8008 namespace cv-test-db",
                *LOGGED,
                "default_backend be_db_8008",
            ],
            "backend be_db_8008": [
                "balance roundrobin",
                f"default-server inter 250ms fastinter 50ms fall 2 rise 1 {SERVER_ARGS}",
                "server db-1-1 10.213.0.5:8008 check weight 100",
            ],
        },
    ),
]


@pytest.fixture(autouse=True)
def test_namespace() -> Iterator[None]:
    """`haproxy -c` opens the namespaces binds name: `cv-test-db` links to this process's own
    (root only: /var/run/netns is the system's directory; the link is removed after)."""
    link = Path("/var/run/netns/cv-test-db")
    made = False
    if os.geteuid() == 0 and not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/proc/self/ns/net")
        made = True
    yield
    if made:
        link.unlink(missing_ok=True)


@pytest.mark.parametrize(("config", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_render_sections(config: RouterConfig, expected: dict[str, list[str]]) -> None:
    rendered = sections(render(config, Path("/run/cv")))

    proxies = {k: v for k, v in rendered.items() if k not in ("global", "defaults")}
    assert proxies == expected
    assert list(proxies) == list(expected)  # sorted by service, stats last


def test_global_and_defaults() -> None:
    rendered = sections(render(RouterConfig(frontends=(WEB,)), Path("/run/cv")))

    assert rendered["global"] == [
        "stats socket /run/cv/admin.sock mode 600 level admin expose-fd listeners",
        "pidfile /run/cv/haproxy.pid",
        "server-state-file /run/cv/servers.state",
        "hard-stop-after 30s",
        "log unix@/run/cv/log.sock len 1024 format raw local0",
    ]
    assert rendered["defaults"] == [
        "mode http",
        "http-reuse safe",
        "retries 3",
        "option redispatch 1",
        "retry-on all-retryable-errors",
        "timeout connect 1s",
        "timeout client 30s",
        "timeout server 30s",
        "timeout check 1s",
        "load-server-state-from-file global",
    ]


def test_stats_without_prometheus_exporter() -> None:
    config = RouterConfig(stats_port=18090)
    rendered = sections(render(config, Path("/run/cv"), prometheus_exporter=False))
    assert rendered["frontend stats"] == [
        "bind 127.0.0.1:18090",
        "stats enable",
        "stats uri /stats",
    ]


def test_render_is_independent_of_frontend_order() -> None:
    api = Frontend(service="api", port=18082)
    assert render(RouterConfig(frontends=(WEB, api)), Path("/r")) == render(
        RouterConfig(frontends=(api, WEB)), Path("/r")
    )


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
@pytest.mark.parametrize("config", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_rendered_config_passes_haproxy_check(config: RouterConfig, run_dir: Path) -> None:
    if any(fe.namespaces() or fe.listeners for fe in config.frontends) and os.geteuid() != 0:
        pytest.skip("binding inside a network namespace needs root")
    result = haproxy_check(render(config, run_dir), run_dir)
    assert result.returncode == 0, result.stderr


def server(name: str, port: int = 19001) -> ServerEntry:
    return ServerEntry(name=name, endpoint=Endpoint.loopback(port))


INVALID: list[tuple[str, RouterConfig, str]] = [
    ("space-in-service", RouterConfig(frontends=(Frontend(service="my web", port=1),)), "service"),
    ("newline-in-service", RouterConfig(frontends=(Frontend(service="w\nx", port=1),)), "service"),
    (
        "semicolon-in-server",
        RouterConfig(frontends=(WEB.model_copy(update={"servers": (server("a;del"),)}),)),
        "server name 'a;del'",
    ),
    (
        "check-path-with-space",
        RouterConfig(frontends=(WEB.model_copy(update={"check_path": "/a b"}),)),
        "check path",
    ),
    (
        "check-path-with-newline",
        RouterConfig(frontends=(WEB.model_copy(update={"check_path": "/a\n    x"}),)),
        "check path",
    ),
    (
        "check-path-relative",
        RouterConfig(frontends=(WEB.model_copy(update={"check_path": "health"}),)),
        "check path",
    ),
    (
        "duplicate-service",
        RouterConfig(frontends=(WEB, WEB.model_copy(update={"port": 2}))),
        "two frontends",
    ),
    (
        "duplicate-port",
        RouterConfig(frontends=(WEB, Frontend(service="api", port=WEB.port))),
        "port 18080 is used by both 'web' and 'api'",
    ),
    (
        "port-of-stats",
        RouterConfig(frontends=(WEB,), stats_port=WEB.port),
        "port 18080 is used by both 'stats' and 'web'",
    ),
    (
        "published-port-of-two-services",
        RouterConfig(
            frontends=(
                WEB.model_copy(update={"binds": (Bind(port=8080),)}),
                Frontend(service="api", port=18081, binds=(Bind(address="127.0.0.1", port=8080),)),
            )
        ),
        "port 8080 is used by both 'web' and 'api'",
    ),
    (
        "same-port-in-two-namespaces-is-fine-but-not-in-one",
        RouterConfig(
            frontends=(
                WEB.model_copy(update={"binds": (Bind(port=80, namespace="a"),)}),
                Frontend(
                    service="api",
                    port=18081,
                    binds=(Bind(port=80, namespace="b"), Bind(port=80, namespace="b")),
                ),
            )
        ),
        "port 80 is used by both 'api' and 'api' in namespace b",
    ),
    (
        "the-wildcard-covers-every-address",
        RouterConfig(
            frontends=(
                WEB.model_copy(update={"binds": (Bind(address="10.9.0.11", port=8080),)}),
                Frontend(service="api", port=18081, binds=(Bind(port=8080),)),
            )
        ),
        "port 8080 is used by both 'web' and 'api'",
    ),
    (
        "backend-name-clash",
        RouterConfig(
            frontends=(
                WEB.model_copy(update={"listeners": (Listener(port=81),)}),
                Frontend(service="web_81", port=18081),
            )
        ),
        "share HAProxy backend 'be_web_81'",
    ),
    (
        "unsafe-namespace-name",
        RouterConfig(
            frontends=(WEB.model_copy(update={"binds": (Bind(port=1, namespace="a b"),)}),)
        ),
        "namespace name 'a b'",
    ),
    (
        "duplicate-server",
        RouterConfig(
            frontends=(WEB.model_copy(update={"servers": (server("a"), server("a", 2))}),)
        ),
        "two servers 'a'",
    ),
]


@pytest.mark.parametrize(
    ("config", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_config_raises(config: RouterConfig, message: str) -> None:
    with pytest.raises(RouterError, match=message):
        render(config, Path("/run/cv"))


def run_dir_for(socket: str, length: int) -> Path:
    """A run directory in which `socket` has a path of exactly `length` bytes."""
    return Path("/tmp/" + "d" * (length - len("/tmp/") - len(socket) - 1))


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
@pytest.mark.parametrize("length", [MAX_SOCKET_PATH, MAX_SOCKET_PATH + 1])
def test_socket_path_limit_is_haproxys(length: int, tmp_path: Path) -> None:
    """MAX_SOCKET_PATH is HAProxy's limit: `haproxy -c` takes a stats socket path of that
    length and refuses one byte more."""
    text = render(RouterConfig(frontends=(WEB,)), run_dir_for("admin.sock", length))
    result = haproxy_check(text, tmp_path)
    assert (result.returncode == 0) == (length <= MAX_SOCKET_PATH), result.stderr


@pytest.mark.parametrize("socket", ["admin.sock", "master.sock"])
def test_socket_paths_are_checked_against_the_limit(socket: str) -> None:
    check_socket_paths(run_dir_for("master.sock", MAX_SOCKET_PATH))
    with pytest.raises(RouterError, match=f"{socket} is 98 bytes; HAProxy accepts at most 97"):
        check_socket_paths(run_dir_for(socket, MAX_SOCKET_PATH + 1))


def test_router_refuses_a_long_run_dir() -> None:
    with pytest.raises(RouterError, match="shorter router run directory"):
        HAProxyRouter(Path("/tmp/" + "x" * 100))


def test_one_port_on_two_addresses_of_the_host_is_not_a_clash() -> None:
    """A fleet host binds a stable frontend port on 127.0.0.1 and on its fleet address."""
    web = WEB.model_copy(update={"binds": (Bind(address="10.9.0.11", port=WEB.port),)})
    text = render(RouterConfig(frontends=(web,)), Path("/run/r"))
    assert "bind 127.0.0.1:18080\n    bind 10.9.0.11:18080\n" in text
