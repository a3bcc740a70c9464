"""How traffic reaches a service: Compose `ports:` and `expose:` plus the `x-conveyor`
extension.

Every `ports:` entry is kept (`Service.ports`, ranges expanded). From them and x-conveyor comes
`Routing`: the HTTP port and its stable frontend port. Under host networking Conveyor routes one
HTTP port per service, so `ports:` says it for most apps ("8080:8000": frontend 8080, app port
8000). Under project networks every port is served, TCP unless it is the HTTP port
(x-conveyor.port, or the port a probe checks) or says `app_protocol: http`. `x-conveyor` says
what Compose cannot (the probe, the balance algorithm) and overrides `ports:` field by field.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.stack import (
    ExposedPort,
    MetricsEndpoint,
    Networking,
    PortSpec,
    Probe,
    Routing,
)
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.expose import exposed_ports
from conveyor.spec.ports import parse_port
from conveyor.spec.values import to_int
from conveyor.spec.yamlpos import YamlPath

_DEFAULT_PROBE = Probe()


def routing(
    ctx: Context, service: YamlPath, raw: dict[str, Any], networking: Networking = "host"
) -> tuple[Routing, tuple[PortSpec, ...], tuple[ExposedPort, ...]]:
    """(routing, every `ports:` entry, `expose:` ports) of one service."""
    all_ports = _ports(ctx, (*service, "ports"), raw.get("ports"))
    expose = exposed_ports(ctx, (*service, "expose"), raw.get("expose"))
    ext_path = (*service, "x-conveyor")
    ext = raw.get("x-conveyor") or {}
    port = ctx.optional(ext, "port", ext_path, to_int, None)
    public_port = ctx.optional(ext, "public_port", ext_path, to_int, None)
    probe = _probe(ctx, (*ext_path, "probe"), ext.get("probe"))
    tcp = [p for p in all_ports if p.protocol == "tcp"]
    chosen: PortSpec | None = None
    if networking == "host":
        for index, item in enumerate(raw.get("ports") or ()):
            if any(p.protocol == "udp" for p in _parsed(item)):
                ctx.error(
                    (*service, "ports", index),
                    f"UDP cannot go through HAProxy, got '{item}': leave network_mode 'host' "
                    "(on project networks Docker publishes it from a single replica)",
                )
        if len(tcp) == 1:
            chosen = tcp[0]
        elif port is not None:
            # x-conveyor names the app port; the `ports:` entry for it says where to publish.
            chosen = next((p for p in tcp if p.target == port), None)
        elif len(tcp) > 1:
            ctx.error(
                (*service, "ports"),
                "several ports are published; set x-conveyor.port to the one Conveyor routes",
            )
    else:
        _warn_udp_expose(ctx, service, raw)
        exposed_tcp = [e.port for e in expose if e.protocol == "tcp"]
        targets = list(dict.fromkeys([p.target for p in tcp] + exposed_tcp))
        if port is None and probe is not None and len(targets) == 1:
            port = targets[0]  # the probe checks the service's only port: HTTP
        elif port is None and probe is not None and len(targets) > 1:
            ctx.error(
                (*ext_path, "probe"),
                "the service has several ports: set x-conveyor.port to the HTTP port the "
                "probe checks",
            )
        if port is not None:
            chosen = next((p for p in tcp if p.target == port), None)
    if chosen is not None:
        port = chosen.target if port is None else port
        public_port = chosen.published if public_port is None else public_port
    return (
        Routing(
            port=port,
            public_port=public_port,
            probe=probe,
            balance="leastconn" if ext.get("balance") == "leastconn" else "roundrobin",
        ),
        tuple(all_ports),
        expose,
    )


def metrics_endpoint(
    ctx: Context, service: YamlPath, raw: dict[str, Any]
) -> MetricsEndpoint | None:
    """x-conveyor.metrics: `/metrics` (a path on the main port) or {path, port}."""
    written = (raw.get("x-conveyor") or {}).get("metrics")
    path = (*service, "x-conveyor", "metrics")
    if written is None:
        return None
    if isinstance(written, str):
        endpoint = MetricsEndpoint(path=written)
    else:
        endpoint = MetricsEndpoint(
            path=written.get("path", "/metrics"),
            port=ctx.optional(written, "port", path, to_int, None),
        )
    if not endpoint.path.startswith("/"):
        where = path if isinstance(written, str) else (*path, "path")
        ctx.error(where, f"a metrics path starts with '/', got {endpoint.path!r}")
    return endpoint


def _probe(ctx: Context, path: YamlPath, raw: Any) -> Probe | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return Probe(path=raw)
    d = _DEFAULT_PROBE
    return Probe(
        path=raw.get("path", d.path),
        interval=ctx.optional(raw, "interval", path, parse_duration, d.interval),
        timeout=ctx.optional(raw, "timeout", path, parse_duration, d.timeout),
        start_timeout=ctx.optional(raw, "start_timeout", path, parse_duration, d.start_timeout),
    )


def _ports(ctx: Context, path: YamlPath, raw: Any) -> list[PortSpec]:
    out: list[PortSpec] = []
    for index, item in enumerate(raw or ()):
        try:
            out.extend(parse_port(item))
        except ValueError as exc:
            ctx.error((*path, index), str(exc))
        if isinstance(item, dict):
            _warn_ignored_port_keys(ctx, (*path, index), item)
    return out


def _warn_ignored_port_keys(ctx: Context, path: YamlPath, item: dict[str, Any]) -> None:
    if item.get("mode") == "host":
        ctx.warn(
            (*path, "mode"),
            "ignored: the port is published by HAProxy, which balances over every replica "
            "(as `ingress` does)",
        )
    if item.get("name"):
        ctx.warn((*path, "name"), "ignored: a port's name is for tools that read the file")


def _parsed(item: Any) -> list[PortSpec]:
    try:
        return parse_port(item)
    except ValueError:
        return []  # reported by _ports


def _warn_udp_expose(ctx: Context, service: YamlPath, raw: dict[str, Any]) -> None:
    for index, item in enumerate(raw.get("expose") or ()):
        if str(item).endswith("/udp"):
            # The name leads to the service address, where HAProxy serves TCP only.
            ctx.warn(
                (*service, "expose", index),
                f"UDP port '{item}' is not served at the service's name (HAProxy serves "
                "TCP); other services reach it only at a replica's own address",
            )
