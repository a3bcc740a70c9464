"""How traffic reaches a service: Compose `ports:` plus the `x-conveyor` extension.

Conveyor routes one HTTP port per service through HAProxy. `ports:` already says it for most
apps ("8080:8000": frontend 8080, app port 8000); `x-conveyor` says what Compose cannot (the
probe, the balance algorithm) and overrides `ports:` field by field when both speak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.model.stack import Probe, Routing
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.values import to_int
from conveyor.spec.yamlpos import YamlPath

_DEFAULT_PROBE = Probe()


@dataclass(frozen=True)
class _Port:
    published: int | None
    target: int


def routing(ctx: Context, service: YamlPath, raw: dict[str, Any]) -> Routing:
    ports = _ports(ctx, (*service, "ports"), raw.get("ports"))
    ext_path = (*service, "x-conveyor")
    ext = raw.get("x-conveyor") or {}
    port = ctx.optional(ext, "port", ext_path, to_int, None)
    public_port = ctx.optional(ext, "public_port", ext_path, to_int, None)
    chosen: _Port | None = None
    if len(ports) == 1:
        chosen = ports[0]
    elif port is not None:
        # x-conveyor names the app port; the `ports:` entry for it says where to publish.
        chosen = next((p for p in ports if p.target == port), None)
    elif len(ports) > 1:
        ctx.error(
            (*service, "ports"),
            "several ports are published; set x-conveyor.port to the one Conveyor routes",
        )
    if chosen is not None:
        port = chosen.target if port is None else port
        public_port = chosen.published if public_port is None else public_port
    return Routing(
        port=port,
        public_port=public_port,
        probe=_probe(ctx, (*ext_path, "probe"), ext.get("probe")),
        balance="leastconn" if ext.get("balance") == "leastconn" else "roundrobin",
    )


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


def _ports(ctx: Context, path: YamlPath, raw: Any) -> list[_Port]:
    out: list[_Port] = []
    for index, item in enumerate(raw or ()):
        try:
            out.append(_port(item))
        except ValueError as exc:
            ctx.error((*path, index), str(exc))
    return out


def _port(item: Any) -> _Port:
    if isinstance(item, dict):
        if item.get("protocol", "tcp") != "tcp":
            raise ValueError(f"only TCP ports can be routed, got protocol '{item['protocol']}'")
        if "target" not in item:
            raise ValueError("a port needs 'target' (the port the app listens on)")
        published = item.get("published")
        return _Port(
            published=None if published in (None, "") else _number(str(published), item),
            target=_number(str(item["target"]), item),
        )
    if isinstance(item, int | float):
        return _Port(published=None, target=_number(str(item), item))
    text, _, protocol = str(item).partition("/")
    if protocol not in ("", "tcp"):
        raise ValueError(f"only TCP ports can be routed, got '{item}'")
    if text.startswith("["):  # [IPv6]:published:target
        text = text[text.find("]") + 1 :].removeprefix(":")
        parts = ["", *text.split(":")]
    else:
        parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"invalid port '{item}' (expected [[IP:]PUBLISHED:]TARGET)")
    target = _number(parts[-1], item)
    published = parts[-2] if len(parts) >= 2 else ""
    return _Port(published=_number(published, item) if published else None, target=target)


def _number(text: str, item: object) -> int:
    if "-" in text.strip("-"):
        raise ValueError(f"port ranges cannot be routed, got '{item}'")
    try:
        return to_int(text)
    except ValueError:
        raise ValueError(f"invalid port number '{text}' in '{item}'") from None
