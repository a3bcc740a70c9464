"""Render an EdgeConfig as the edge HAProxy's configuration file. Pure: no I/O.

One `frontend fe_<service>_<port>` per published port and a `backend be_<service>_<port>`
with one server per app host. App hosts are health-checked (`option httpchk` on the
service's health path for HTTP, a TCP connect otherwise); a host that stops answering
leaves rotation after `fall` checks, and a request whose connection to it fails is retried
on another host (`retries`, `option redispatch`), so losing a host loses no request that
another host can serve. Validated with the router's `VALIDATOR` (`haproxy -c -f FILE`).
"""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import RouterError
from conveyor.model.edge import EdgeConfig, EdgePort
from conveyor.render.haproxy import (
    ADMIN_SOCKET,
    FASTINTER_MS,
    HARD_STOP_AFTER,
    PID_FILE,
    STATE_FILE,
    TCP_TIMEOUT,
    VALIDATOR,
    bind_address,
    check_name,
)

__all__ = ["STATE_FILE", "VALIDATOR", "backend_name", "render_edge"]

_INDENT = "    "

# What the edge retries on another host: a connection that fails (the host is gone or its
# HAProxy is down), an app host that closes without answering (it died mid-request), and an
# app host's 503 (it has no replica left for the service). Not 500/502/504: those may come
# after the request was acted on, and repeating it elsewhere would do it twice.
RETRY_ON = "conn-failure empty-response 503"


def _section(header: str, lines: list[str]) -> list[str]:
    return [header, *(_INDENT + line for line in lines), ""]


def _check_args(config: EdgeConfig) -> str:
    """Every server's check keywords. A connection error on live traffic switches checks to
    `fastinter` (as the router does for replicas; not `mark-down`, for the reason given at
    render.haproxy.server_args) so a lost host leaves rotation within a few checks."""
    inter = max(1, round(config.check_interval * 1000))
    return (
        f"inter {inter}ms fastinter {FASTINTER_MS}ms fall {config.check_fall} "
        f"rise {config.check_rise} observe layer4 error-limit 1 on-error fastinter"
    )


def backend_name(port: EdgePort) -> str:
    """The edge's backend of one published port (its app hosts are its servers)."""
    return f"be_{port.service}_{port.port}"


def _port(config: EdgeConfig, port: EdgePort) -> list[str]:
    name = f"{port.service}_{port.port}"
    tcp = port.mode == "tcp"
    frontend = [f"bind {bind_address(port.address, port.port)}"]
    if tcp:
        frontend += ["mode tcp", f"timeout client {TCP_TIMEOUT}"]
    else:
        # The app sees who called, as it would behind Conveyor on one host.
        frontend.append("option forwardfor")
    frontend.append(f"default_backend {backend_name(port)}")
    backend = ["mode tcp", f"timeout server {TCP_TIMEOUT}"] if tcp else []
    backend.append("balance roundrobin")
    if port.check_path is not None:
        backend += [f"option httpchk GET {port.check_path}", "http-check expect status 200-399"]
    backend.append(f"default-server check {_check_args(config)}")
    backend += [f"server {t.host} {bind_address(t.address, t.port)}" for t in port.targets]
    return _section(f"frontend fe_{name}", frontend) + _section(
        f"backend {backend_name(port)}", backend
    )


def validate(config: EdgeConfig) -> None:
    """Reject names HAProxy would misread and two services on one published port."""
    seen: dict[tuple[str, int], str] = {}
    for port in config.ports:
        check_name("service", port.service)
        for target in port.targets:
            check_name("server", target.host)
        if port.check_path is not None and (
            not port.check_path.startswith("/") or any(c.isspace() for c in port.check_path)
        ):
            raise RouterError(
                f"service {port.service!r}: check path {port.check_path!r} must start with "
                "'/' and contain no spaces"
            )
        # One address family binds a port once, whatever the address (0.0.0.0 covers all).
        key = ("6" if ":" in port.address else "4", port.port)
        if key in seen:
            raise RouterError(
                f"published port {port.port} is used by both {seen[key]!r} and {port.service!r}"
            )
        seen[key] = port.service


def render_edge(config: EdgeConfig, run_dir: Path, *, user: str | None = None) -> str:
    """The edge HAProxy's configuration. `run_dir` (absolute) holds its admin socket and
    pid file, as for the router. `user`: the account HAProxy drops to once its ports are
    bound (a provisioned edge host starts it as root; None: it stays who started it)."""
    validate(config)
    drop = [f"user {user}", f"group {user}"] if user is not None else []
    lines = [
        "# Rendered by Conveyor (render.edge_haproxy): the fleet's edge. Do not edit.",
        "",
        *_section(
            "global",
            [
                # `expose-fd listeners`: a reload hands the listening sockets to the new
                # worker (a master-worker edge), so no connection waiting in the old
                # worker's accept queue is reset.
                f"stats socket {run_dir / ADMIN_SOCKET} mode 600 level admin expose-fd listeners",
                f"pidfile {run_dir / PID_FILE}",
                # Written just before each reload (router.fleet's LocalEdge, the edge host's
                # script): app hosts keep their checks' verdicts across it. A fresh worker
                # starts every server up but down at its FIRST failed check (HAProxy starts a
                # server's health at `rise`, not `rise + fall - 1`), and the edge is reloaded
                # exactly when hosts come and go, under load: one slow check on each
                # remaining host then left the edge with no server (a burst of 503s).
                f"server-state-file {run_dir / STATE_FILE}",
                f"hard-stop-after {HARD_STOP_AFTER}",
                *drop,
            ],
        ),
        *_section(
            "defaults",
            [
                "mode http",
                "retries 3",
                # A retry goes to another host, not the one that just failed.
                "option redispatch 1",
                f"retry-on {RETRY_ON}",
                "timeout connect 1s",
                "timeout client 30s",
                "timeout server 30s",
                # A check's connect still gives up after `timeout connect` (a lost host is
                # seen as fast); the answer may take longer: an app host's HAProxy that
                # meets a dead replica its own checks have not caught yet waits its
                # `timeout connect` (1 s) before it redispatches, so a 1 s check failed on a
                # host that serves.
                "timeout check 3s",
                "load-server-state-from-file global",
            ],
        ),
    ]
    for port in sorted(config.ports, key=lambda p: (p.port, p.service)):
        lines += _port(config, port)
    if config.stats_port is not None:
        lines += _section(
            "frontend stats",
            [f"bind 127.0.0.1:{config.stats_port}", "stats enable", "stats uri /stats"],
        )
    return "\n".join(lines)
