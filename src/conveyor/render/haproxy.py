"""Render a RouterConfig as an HAProxy 2.6 configuration file. Pure: no I/O.

One `frontend fe_<service>` on 127.0.0.1:<port> and one `backend be_<service>` per Frontend,
plus an optional stats/Prometheus frontend. Under project networking a service is also served
inside its service address's network namespace (`bind … namespace NAME`), through a frontend of
its own, `in_<service>`, so that HAProxy's statistics (and Prometheus) tell service-to-service
traffic from traffic coming in on the stable and published ports (`fe_<service>`); both use the
same backend. Each further port of the service gets `fe_<service>_<port>` / `in_<service>_<port>`
(each only when it has a bind) and `be_<service>_<port>` with the same servers at that port;
TCP ports are served in `mode tcp`. The adapter
(`haproxy.py`) validates the result with `VALIDATOR` (`haproxy -c -f FILE`) and runs it; the
runtime API then changes servers without reloads.
"""

from __future__ import annotations

import re
from pathlib import Path

from conveyor.errors import RouterError
from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.routing import Bind, Frontend, Mode, RouterConfig, ServerEntry
from conveyor.render.validator import Validator

ADMIN_SOCKET = "admin.sock"
# HTTP requests are logged, one datagram each, to this unix socket in the run directory; the
# agent (or the server) reads them into latency histograms (observe.metrics.access_log). With
# nobody reading, HAProxy drops them: traffic never waits on its log.
ACCESS_LOG_SOCKET = "log.sock"  # shorter than admin.sock: within the same path limit
# frontend, backend, server, status, total active time (ms) of each HTTP request.
ACCESS_LOG_FORMAT = "%ft %b %s %ST %Ta"
MASTER_SOCKET = "master.sock"
PID_FILE = "haproxy.pid"
STATE_FILE = "servers.state"

# HAProxy binds a unix socket as "<path>.<pid>.tmp" and renames it, so it refuses paths longer
# than 97 bytes ("socket path ... too long (max 97)"), well below the kernel's 108.
MAX_SOCKET_PATH = 97

# Old workers of a hitless reload finish their in-flight requests, but not forever.
HARD_STOP_AFTER = "30s"

# TCP connections (a database pool, a message broker) idle far longer than HTTP requests;
# HAProxy must not cut them after the HTTP timeouts.
TCP_TIMEOUT = "1h"

# Names go into config lines and into admin-socket commands (where ';' separates commands and a
# newline ends one), so only HAProxy's safe identifier characters are accepted.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# An HTTP check path is sent verbatim as the request target: visible ASCII only, no spaces.
_CHECK_PATH = re.compile(r"/[\x21-\x7e]*\Z")

_INDENT = "    "

# Bind addresses that listen on every address of their family.
WILDCARDS = frozenset({"0.0.0.0", "::", "*", ""})  # noqa: S104 — names them, binds nothing

INSTALL_HINT = "`conveyor bootstrap` installs HAProxy"

# What checks a rendered file: exit 0 or 1, the reasons on "[ALERT] (pid) : ..." lines.
VALIDATOR = Validator(
    name="HAProxy",
    argv=("haproxy", "-c", "-f", "{file}"),
    message_pattern=r"^\[ALERT\]\s*(?:\(\d+\)\s*)?:\s*(?P<message>.*)$",
    install_hint=INSTALL_HINT,
)


def backend_name(service: str, port: int | None = None) -> str:
    """`be_<service>` for a service's main port, `be_<service>_<port>` for its others."""
    return f"be_{service}" if port is None else f"be_{service}_{port}"


def frontend_name(service: str, port: int | None = None) -> str:
    """The frontend of a service's port for callers outside the project's networks."""
    return f"fe_{service}" if port is None else f"fe_{service}_{port}"


def internal_frontend_name(service: str, port: int | None = None) -> str:
    """The frontend inside the service address: other services calling it by name. A prefix of
    its own, since service names may hold `_`: no service's `fe_` name can take it."""
    return f"in_{service}" if port is None else f"in_{service}_{port}"


def backends(frontend: Frontend) -> list[tuple[str, int | None]]:
    """Every backend of a service with the port its servers listen on there (None: each
    server's own endpoint port)."""
    return [
        (backend_name(frontend.service), frontend.target),
        *((backend_name(frontend.service, x.port), x.port) for x in frontend.listeners),
    ]


def server_address(server: ServerEntry, port: int | None) -> Endpoint:
    """Where a server answers in a backend whose servers listen on `port` (a fleet's replica:
    at the host port its engine published that port on, ServerEntry.ports)."""
    return server.reached_at(port)


def bind_address(address: str, port: int) -> str:
    """An address:port for a bind line; IPv6 addresses take HAProxy's `ipv6@` prefix."""
    return f"ipv6@{address}:{port}" if ":" in address else f"{address}:{port}"


def socket_paths(run_dir: Path) -> tuple[Path, Path]:
    """The admin (stats) socket and the master CLI socket."""
    return run_dir / ADMIN_SOCKET, run_dir / MASTER_SOCKET


def check_socket_paths(run_dir: Path) -> None:
    for path in socket_paths(run_dir):
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            raise RouterError(
                f"unix socket path {path} is {len(str(path).encode())} bytes; HAProxy accepts at "
                f"most {MAX_SOCKET_PATH}: choose a shorter router run directory"
            )


def check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise RouterError(
            f"{kind} name {name!r} is not usable in HAProxy: use letters, digits, '-', '_', '.'"
        )


def validate(config: RouterConfig) -> None:
    """Reject what HAProxy would misread or silently accept: unsafe names and paths, duplicate
    services, servers or ports (two binds on one port are accepted by HAProxy: SO_REUSEPORT)."""
    seen_services: set[str] = set()
    seen_backends: set[str] = set()
    # (namespace, IPv6, port) -> every (address, owner) bound there.
    ports: dict[tuple[str | None, bool, int], list[tuple[str, str]]] = {}
    if config.stats_port is not None:
        ports[(None, False, config.stats_port)] = [(LOOPBACK, "stats")]

    def claim(bind: Bind, owner: str) -> None:
        # Binds of one address family and port clash when one of them is the wildcard
        # (0.0.0.0 covers 127.0.0.1) or both name the same address; two addresses of the
        # host do not (a fleet host binds a stable port on 127.0.0.1 and on its fleet
        # address). Binds inside a namespace only meet binds in the same namespace.
        key = (bind.namespace, ":" in bind.address, bind.port)
        for address, other in ports.get(key, ()):
            if address == bind.address or WILDCARDS & {address, bind.address}:
                raise RouterError(
                    f"port {bind.port} is used by both {other!r} and {owner!r}"
                    + (f" in namespace {bind.namespace}" if bind.namespace else "")
                )
        ports.setdefault(key, []).append((bind.address, owner))

    for frontend in config.frontends:
        check_name("service", frontend.service)
        if frontend.service in seen_services:
            raise RouterError(f"service {frontend.service!r} has two frontends")
        seen_services.add(frontend.service)
        for backend, _port in backends(frontend):
            if backend in seen_backends:
                raise RouterError(f"two services would share HAProxy backend {backend!r}")
            seen_backends.add(backend)
        claim(Bind(address=frontend.address, port=frontend.port), frontend.service)
        for listener_binds in (frontend.binds, *(x.binds for x in frontend.listeners)):
            for bind in listener_binds:
                if bind.namespace is not None:
                    check_name("namespace", bind.namespace)
                claim(bind, frontend.service)
        if frontend.check_path is not None and not _CHECK_PATH.match(frontend.check_path):
            raise RouterError(
                f"service {frontend.service!r}: check path {frontend.check_path!r} must start "
                "with '/' and contain no spaces or control characters"
            )
        names: set[str] = set()
        for server in frontend.servers:
            check_name("server", server.name)
            if server.name in names:
                raise RouterError(f"service {frontend.service!r} has two servers {server.name!r}")
            names.add(server.name)


def check_interval_ms(frontend: Frontend) -> int:
    return max(1, round(frontend.check_interval * 1000))


def server_args(frontend: Frontend) -> str:
    """Check, passive-health and connection-pool keywords of every server of this frontend's
    backend.

    Rendered as the backend's `default-server` and sent in full by `add server`, because servers
    added at run time do not inherit `default-server`. A connection error seen on live traffic
    (`observe layer4`) switches the server's checks to `fastinter`, so a dead replica fails
    `fall` checks and leaves rotation within a few hundred milliseconds. It does not mark the
    server down by itself: HAProxy 2.6 counts the error of a request it redispatched against the
    server it was redispatched *to*, and with `on-error mark-down` a killed replica took the
    healthy one down with it (measured: ~40 HTTP 503 per kill under 330 req/s). `slowstart 0`
    gives a replica full weight as soon as it is up. `SERVER_POOL`: see there.
    """
    return (
        f"inter {check_interval_ms(frontend)}ms fastinter {FASTINTER_MS}ms "
        f"fall {frontend.check_fall} rise {frontend.check_rise} "
        f"observe layer4 error-limit 1 on-error fastinter slowstart 0 {SERVER_POOL}"
    )


# HAProxy's own defaults for a server of the configuration file, stated because a server added
# at run time (`add server`, how every replica enters rotation) gets neither: HAProxy 2.6 gives
# it no idle-connection pool (`show servers conn`: purge_delay 0, idle_lim 0). Without one each
# request opened a server connection despite keep-alive and HAProxy reset it after the answer,
# for which a Python replica printed a traceback: the first keep-alive attempt, slower than
# `option http-server-close` (+1.1 ms p50, half the throughput). With it, a few connections per
# replica carry thousands of requests.
SERVER_POOL = "pool-max-conn -1 pool-purge-delay 5s"


# Check interval right after a replica showed a connection error on live traffic.
FASTINTER_MS = 50


def server_line(server: ServerEntry, port: int | None = None) -> str:
    """A server as the config file can state it. The file has no drain state: a drained server is
    rendered with weight 0 (no new requests) and the adapter restores `drain` with its real weight
    through the runtime API right after (re)loading. `disabled` is the config form of maint.
    `port` is where servers listen in this backend (None: the server's own endpoint port)."""
    weight = 0 if server.state == "drain" else server.weight
    line = f"server {server.name} {server_address(server, port)} check weight {weight}"
    if server.state == "maint":
        line += " disabled"
    return line


def _section(header: str, lines: list[str]) -> list[str]:
    return [header, *(_INDENT + line for line in lines), ""]


def _global(run_dir: Path, user: str | None = None, socket_user: str | None = None) -> list[str]:
    drop = [f"user {user}", f"group {user}"] if user is not None else []
    owner = f" user {socket_user}" if socket_user is not None else ""
    return _section(
        "global",
        [
            f"stats socket {run_dir / ADMIN_SOCKET} mode 600{owner} level admin "
            "expose-fd listeners",
            # The pid file is set here and not with -p: giving both makes HAProxy print
            # "'pidfile' already specified" on every start and reload.
            f"pidfile {run_dir / PID_FILE}",
            # Dumped by the adapter before each reload so servers keep their state (a dead
            # replica stays down instead of being assumed up until its first failed check).
            f"server-state-file {run_dir / STATE_FILE}",
            f"hard-stop-after {HARD_STOP_AFTER}",
            f"log unix@{run_dir / ACCESS_LOG_SOCKET} len 1024 format raw local0",
            *drop,
        ],
    )


def _defaults() -> list[str]:
    return _section(
        "defaults",
        [
            "mode http",
            # Keep-alive on both sides (HAProxy's default; `option http-server-close` is not
            # set): a request goes out on an idle connection to its replica instead of a new
            # one. A connection per request was most of what a service address added: p50
            # +0.42 to +0.62 ms east-west (TCP connect and close, and a Python replica's
            # thread per connection); with reuse +0.14 to +0.29 ms (docs/networking.md,
            # "Measured"). Needs the pool of SERVER_POOL. `safe` is HAProxy's default too; a
            # request that meets a connection its replica has just closed (a keep-alive
            # timeout) is retried (`retry-on`), on another replica (`redispatch`).
            "http-reuse safe",
            # A request whose replica refuses or drops the connection is retried on another one.
            "retries 3",
            "option redispatch 1",
            "retry-on all-retryable-errors",
            "timeout connect 1s",
            "timeout client 30s",
            "timeout server 30s",
            "timeout check 1s",
            "load-server-state-from-file global",
        ],
    )


def _bind_line(bind: Bind) -> str:
    line = f"bind {bind_address(bind.address, bind.port)}"
    return line + (f" namespace {bind.namespace}" if bind.namespace else "")


def _tcp_lines(mode: Mode, side: str) -> list[str]:
    """What a TCP section changes from the HTTP defaults."""
    if mode == "http":
        return []
    return ["mode tcp", f"timeout {side} {TCP_TIMEOUT}"]


def _frontend(
    name: str, backend: str, mode: Mode, binds: list[Bind], main: str | None = None
) -> list[str]:
    lines = [main] if main is not None else []
    lines += [_bind_line(b) for b in binds]
    if not lines:
        return []  # every bind of this port is in the other frontend
    # HTTP requests are logged for their latency; the format's timers exist in HTTP mode only.
    logged = ["log global", f'log-format "{ACCESS_LOG_FORMAT}"'] if mode == "http" else []
    return _section(
        f"frontend {name}",
        [*lines, *logged, *_tcp_lines(mode, "client"), f"default_backend {backend}"],
    )


def _split(binds: tuple[Bind, ...]) -> tuple[list[Bind], list[Bind]]:
    """(binds on the host, binds inside the service address's namespace)."""
    return [b for b in binds if b.namespace is None], [b for b in binds if b.namespace]


def _backend(
    frontend: Frontend, backend: str, port: int | None, mode: Mode, check_path: str | None
) -> list[str]:
    lines = [*_tcp_lines(mode, "server"), f"balance {frontend.balance}"]
    if check_path is not None:
        lines += [f"option httpchk GET {check_path}", "http-check expect status 200-399"]
    lines.append(f"default-server {server_args(frontend)}")
    lines += [server_line(server, port) for server in frontend.servers]
    return _section(f"backend {backend}", lines)


def _service(frontend: Frontend) -> list[str]:
    """The sections of one service: its main port, then each further port."""
    service = frontend.service
    main_bind = f"bind {bind_address(frontend.address, frontend.port)}"
    outside, inside = _split(frontend.binds)
    backend = backend_name(service)
    lines = _frontend(frontend_name(service), backend, frontend.mode, outside, main=main_bind)
    lines += _frontend(internal_frontend_name(service), backend, frontend.mode, inside)
    lines += _backend(frontend, backend, frontend.target, frontend.mode, frontend.check_path)
    for listener in frontend.listeners:
        backend = backend_name(service, listener.port)
        outside, inside = _split(listener.binds)
        lines += _frontend(frontend_name(service, listener.port), backend, listener.mode, outside)
        lines += _frontend(
            internal_frontend_name(service, listener.port), backend, listener.mode, inside
        )
        lines += _backend(frontend, backend, listener.port, listener.mode, None)
    return lines


def _stats(port: int, prometheus_exporter: bool) -> list[str]:
    lines = [f"bind 127.0.0.1:{port}", "stats enable", "stats uri /stats"]
    if prometheus_exporter:
        lines.append("http-request use-service prometheus-exporter if { path /metrics }")
    return _section("frontend stats", lines)


def render(
    config: RouterConfig,
    run_dir: Path,
    *,
    prometheus_exporter: bool = True,
    user: str | None = None,
    socket_user: str | None = None,
) -> str:
    """The HAProxy configuration for `config`. `run_dir` must be absolute: HAProxy re-executes
    itself on reload and the paths in the file must still resolve. `prometheus_exporter` is False
    when `haproxy -vv` does not list the prometheus-exporter service. `user`: the account
    HAProxy drops to after binding (a fleet host's HAProxy is started as root by systemd).
    `socket_user`: who owns the admin socket (HAProxy runs as root, the fleet's SSH user
    reaches the socket through its tunnel: a fleet host logged in as the deploy user)."""
    validate(config)
    if socket_user is not None:
        check_name("user", socket_user)
    lines = [
        "# Rendered by Conveyor (conveyor.router). Do not edit: the next ensure() rewrites it.",
        "",
        *_global(run_dir, user, socket_user),
        *_defaults(),
    ]
    for frontend in sorted(config.frontends, key=lambda f: f.service):
        lines += _service(frontend)
    if config.stats_port is not None:
        lines += _stats(config.stats_port, prometheus_exporter)
    return "\n".join(lines)
