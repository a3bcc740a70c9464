"""Checks that need the whole stack or the file system: references between services,
volumes and secrets, dependency cycles, port clashes, numbers out of range, files that must
exist. Each problem points at the line of the key that causes it, and all are reported
together with the model builder's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from conveyor.model.stack import PortSpec, Service, Stack, UpdateConfig
from conveyor.spec.context import Context
from conveyor.spec.ports import parse_port
from conveyor.spec.service import env_file_required, env_files
from conveyor.spec.values import describe, suggest
from conveyor.spec.yamlpos import YamlPath

PORT_MIN, PORT_MAX = 1, 65535


def check_stack(ctx: Context, stack: Stack) -> None:
    raw_services: dict[str, Any] = ctx.doc.data.get("services") or {}
    for name, service in stack.services.items():
        path: YamlPath = ("services", name)
        raw = raw_services.get(name) or {}
        if service.image is None and service.build is None:
            ctx.error(path, "needs 'image' or 'build'")
        _dependencies(ctx, path, service, raw, stack)
        _deploy(ctx, path, service, raw)
        _durations(ctx, path, raw, service)
        _references(ctx, path, service, raw, stack)
        _env_files(ctx, path, raw)
        _build(ctx, path, service, raw)
        _routing(ctx, path, service, raw)
        _udp(ctx, path, service, raw, stack)
    _cycles(ctx, stack, raw_services)
    _public_ports(ctx, stack, raw_services)
    _secret_files(ctx, stack)


def _dependencies(
    ctx: Context, path: YamlPath, service: Service, raw: dict[str, Any], stack: Stack
) -> None:
    for dep in service.depends_on:
        if dep in stack.services:
            continue
        where = _dependency_path(path, raw, dep)
        profiles = ctx.disabled.get(dep)
        if profiles is not None:
            listed = " or ".join(f"'{p}'" for p in profiles)
            ctx.error(
                where,
                f"depends on service '{dep}', which runs only with profile {listed}: enable it "
                f"(--profile {profiles[0]} or COMPOSE_PROFILES), or mark the dependency "
                "'required: false'",
                about=(*path, "depends_on"),
            )
            continue
        hint = suggest(dep, stack.services)
        ctx.error(where, f"depends on unknown service '{dep}'{hint}", about=(*path, "depends_on"))


def _dependency_path(path: YamlPath, raw: dict[str, Any], dep: str) -> YamlPath:
    """Where `dep` is written: a list item or a mapping key."""
    written = raw.get("depends_on")
    if isinstance(written, list) and dep in written:
        return (*path, "depends_on", written.index(dep))
    return (*path, "depends_on", dep)


def _deploy(ctx: Context, path: YamlPath, service: Service, raw: dict[str, Any]) -> None:
    deploy = raw.get("deploy") or {}
    if service.replicas < 0:
        where = (*path, "deploy", "replicas") if "replicas" in deploy else (*path, "scale")
        ctx.error(where, f"must be 0 or more, got {service.replicas}")
    for key, config in (
        ("update_config", service.update_config),
        ("rollback_config", service.rollback_config),
    ):
        if deploy.get(key):
            _update_config(ctx, (*path, "deploy", key), config, deploy[key])


def _update_config(ctx: Context, path: YamlPath, config: UpdateConfig, raw: dict[str, Any]) -> None:
    if config.parallelism < 0:
        ctx.error((*path, "parallelism"), f"must be 0 or more, got {config.parallelism}")
    if not 0.0 <= config.max_failure_ratio <= 1.0:
        ctx.error(
            (*path, "max_failure_ratio"),
            f"must be between 0 and 1, got {describe(raw['max_failure_ratio'])}",
        )
    for key in ("delay", "monitor"):
        if getattr(config, key) < 0:
            ctx.error((*path, key), f"must not be negative, got {describe(raw[key])}")


def _durations(ctx: Context, path: YamlPath, raw: dict[str, Any], service: Service) -> None:
    """Negative waits are parseable (Go allows them) but mean nothing for a deployment."""
    if service.stop_grace_period < 0:
        value = raw["stop_grace_period"]
        ctx.error((*path, "stop_grace_period"), f"must not be negative, got {describe(value)}")
    health = service.healthcheck
    if health is not None:
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if getattr(health, key) < 0:
                value = raw["healthcheck"][key]
                where = (*path, "healthcheck", key)
                ctx.error(where, f"must not be negative, got {describe(value)}")
        if health.retries < 0:
            ctx.error((*path, "healthcheck", "retries"), f"must be 0 or more, got {health.retries}")
    probe = service.routing.probe
    written = (raw.get("x-conveyor") or {}).get("probe")
    if probe is not None and isinstance(written, dict):
        for key in ("interval", "timeout", "start_timeout"):
            if getattr(probe, key) <= 0:
                where = (*path, "x-conveyor", "probe", key)
                ctx.error(where, f"must be more than 0, got {describe(written[key])}")


def _references(
    ctx: Context, path: YamlPath, service: Service, raw: dict[str, Any], stack: Stack
) -> None:
    for mount in service.volumes:
        source = mount.source
        if mount.type == "volume" and source is not None and source not in stack.volumes:
            index = _find(raw.get("volumes"), source)
            ctx.error(
                (*path, "volumes", index),
                f"volume '{source}' is not declared under top-level 'volumes'"
                f"{suggest(source, stack.volumes)}",
            )
    for secret in service.secrets:
        if secret.source not in stack.secrets:
            index = _find(raw.get("secrets"), secret.source)
            ctx.error(
                (*path, "secrets", index),
                f"secret '{secret.source}' is not declared under top-level 'secrets'"
                f"{suggest(secret.source, stack.secrets)}",
            )
    for config in service.configs:
        if config.source not in stack.configs:
            index = _find(raw.get("configs"), config.source)
            ctx.error(
                (*path, "configs", index),
                f"config '{config.source}' is not declared under top-level 'configs'"
                f"{suggest(config.source, stack.configs)}",
            )
    _networks(ctx, path, raw)


def _networks(ctx: Context, path: YamlPath, raw: dict[str, Any]) -> None:
    """Every network a service joins is declared (`default` always exists)."""
    declared = set(ctx.doc.data.get("networks") or {}) | {"default"}
    written = raw.get("networks")
    names = list(written) if isinstance(written, dict | list) else []
    for index, name in enumerate(names):
        if name in declared:
            continue
        where = (
            (*path, "networks", index) if isinstance(written, list) else (*path, "networks", name)
        )
        ctx.error(
            where,
            f"network '{name}' is not declared under top-level 'networks'"
            f"{suggest(str(name), declared)}",
        )


def _find(items: Any, source: str) -> int:
    """Index of the short- or long-syntax item that names `source` (for its line)."""
    for index, item in enumerate(items or ()):
        if isinstance(item, str) and item.split(":")[0] == source:
            return index
        if isinstance(item, dict) and item.get("source") == source:
            return index
    return 0


def _env_files(ctx: Context, path: YamlPath, raw: dict[str, Any]) -> None:
    written = raw.get("env_file")
    entries = written if isinstance(written, list) else [written] if written else []
    for index, ((name, _fmt), entry) in enumerate(zip(env_files(written), entries, strict=True)):
        if env_file_required(entry) and not ctx.resolve(name).is_file():
            where = (*path, "env_file", index) if isinstance(written, list) else (*path, "env_file")
            ctx.error(where, f"env file '{name}' does not exist")


def _build(ctx: Context, path: YamlPath, service: Service, raw: dict[str, Any]) -> None:
    build = service.build
    if build is None or not Path(build.context).is_absolute():
        return  # remote (git URL) contexts are the builder's business
    written = raw["build"]
    spec = written if isinstance(written, dict) else {}
    context = written if isinstance(written, str) else spec.get("context") or "."
    where = (*path, "build", "context") if "context" in spec else (*path, "build")
    if not Path(build.context).is_dir():
        ctx.error(where, f"build context '{context}' does not exist")
        return
    if spec.get("dockerfile_inline") is not None:
        return
    if not (Path(build.context) / build.dockerfile).is_file():
        where = (*path, "build", "dockerfile") if "dockerfile" in spec else where
        ctx.error(where, f"Dockerfile '{build.dockerfile}' not found in build context '{context}'")


def _routing(ctx: Context, path: YamlPath, service: Service, raw: dict[str, Any]) -> None:
    routing = service.routing
    for key, value in (("port", routing.port), ("public_port", routing.public_port)):
        if value is not None and not PORT_MIN <= value <= PORT_MAX:
            where = _routing_path(path, raw, key)
            ctx.error(where, f"must be between {PORT_MIN} and {PORT_MAX}, got {value}")
    probe = routing.probe
    if probe is not None and not probe.path.startswith("/"):
        written = (raw.get("x-conveyor") or {}).get("probe")
        where = (*path, "x-conveyor", "probe")
        if isinstance(written, dict):
            where = (*where, "path")
        ctx.error(where, f"must start with '/', got '{probe.path}'")


def _routing_path(path: YamlPath, raw: dict[str, Any], key: str) -> YamlPath:
    """Where a routing value came from: x-conveyor when it says it, else `ports:`."""
    if key in (raw.get("x-conveyor") or {}):
        return (*path, "x-conveyor", key)
    ports = raw.get("ports") or []
    return (*path, "ports", 0) if len(ports) == 1 else (*path, "ports")


def _public_ports(ctx: Context, stack: Stack, raw_services: dict[str, Any]) -> None:
    """Host ports two services would both listen on: stable frontend ports, and published
    ports (TCP through HAProxy, UDP through Docker: each protocol has its own numbers)."""
    owners: dict[tuple[str, int], str] = {}
    for name, service in stack.services.items():  # file order: the later one is reported
        raw = raw_services.get(name) or {}
        claims: list[tuple[str, int, YamlPath]] = []
        port = service.routing.public_port
        if port is not None:
            claims.append(("tcp", port, _routing_path(("services", name), raw, "public_port")))
        for index, entry in _published(raw, service):
            assert entry.published is not None
            if entry.published != port or entry.protocol != "tcp":
                claims.append((entry.protocol, entry.published, ("services", name, "ports", index)))
        mine: set[tuple[str, int]] = set()
        for protocol, number, where in claims:
            key = (protocol, number)
            if key in owners and key not in mine:
                what = "public port" if protocol == "tcp" else "UDP port"
                ctx.error(where, f"{what} {number} is already used by service '{owners[key]}'")
            else:
                owners[key] = name
                mine.add(key)


def _published(raw: dict[str, Any], service: Service) -> list[tuple[int, PortSpec]]:
    """(index of the `ports:` entry, a published port it gives) of a service."""
    out: list[tuple[int, PortSpec]] = []
    for index, item in enumerate(raw.get("ports") or ()):
        try:
            parsed = parse_port(item)
        except ValueError:
            continue  # reported by the model builder
        out.extend((index, p) for p in parsed if p.published is not None)
    return out


def _udp(ctx: Context, path: YamlPath, service: Service, raw: dict[str, Any], stack: Stack) -> None:
    """UDP goes straight from Docker to the one replica: never several, never from a
    container Docker publishes nothing of (on internal networks only)."""
    udp = [(i, p) for i, p in _published(raw, service) if p.protocol == "udp"]
    if not udp or service.networking != "project":
        return
    index = udp[0][0]
    if service.replicas > 1:
        ctx.error(
            (*path, "ports", index),
            f"UDP cannot go through HAProxy: Docker publishes it from a single replica, and "
            f"this service has {service.replicas} (use TCP, or replicas: 1)",
        )
    nets = [stack.networks.get(n) for n in service.networks]
    if nets and all(n is not None and n.internal for n in nets):
        ctx.error(
            (*path, "ports", index),
            "Docker publishes no port of a container on internal networks only: attach the "
            "service to a network that is not internal",
        )


def _secret_files(ctx: Context, stack: Stack) -> None:
    for kind, resources in (("secrets", stack.secrets), ("configs", stack.configs)):
        raw: dict[str, Any] = ctx.doc.data.get(kind) or {}
        for name, resource in resources.items():
            if resource.file is not None and not Path(resource.file).exists():
                written = raw[name]["file"]
                ctx.error((kind, name, "file"), f"file '{written}' does not exist")


def _cycles(ctx: Context, stack: Stack, raw_services: dict[str, Any]) -> None:
    graph = {
        name: sorted(dep for dep in service.depends_on if dep in stack.services)
        for name, service in stack.services.items()
    }
    for component in _strongly_connected(graph):
        start = min(component)
        if len(component) == 1 and start not in graph[start]:
            continue
        cycle = _cycle_through(start, graph, component)
        path: YamlPath = ("services", start)
        ctx.error(
            _dependency_path(path, raw_services[start], cycle[1]),
            "dependency cycle: " + " -> ".join(cycle),
            about=(*path, "depends_on"),
        )


def _strongly_connected(graph: dict[str, list[str]]) -> Iterator[set[str]]:
    """Tarjan's algorithm; a Compose file has few services, so recursion depth is fine."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return iter(sorted(found, key=min))


def _cycle_through(start: str, graph: dict[str, list[str]], within: Iterable[str]) -> list[str]:
    """The shortest cycle from `start` back to itself (breadth-first, by name)."""
    allowed = set(within)
    came_from: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in graph[node]:
            if nxt == start:
                back = [node]  # walk back from the last hop to start
                while back[-1] != start:
                    back.append(came_from[back[-1]])
                return [*reversed(back), start]
            if nxt in allowed and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [start, start]
