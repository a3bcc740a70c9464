"""Compose `ports:` and `expose:` -> model.PortSpec / port numbers.

Short syntax `[[HOST_IP:][PUBLISHED]:]TARGET[/PROTOCOL]` (ranges `8000-8002` on either side,
IPv6 host addresses in brackets) and the long syntax (`target`, `published`, `host_ip`,
`protocol`, `app_protocol`, `mode`, `name`). A range becomes one PortSpec per port. Each
parser raises ValueError with a message for the entry; the caller points it at the line.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.stack import PortProtocol, PortSpec
from conveyor.spec.values import to_int

PORT_MIN, PORT_MAX = 1, 65535
_PROTOCOLS: dict[str, PortProtocol] = {"tcp": "tcp", "udp": "udp"}


def parse_port(item: Any) -> list[PortSpec]:
    """One `ports:` entry, in either syntax."""
    if isinstance(item, dict):
        return _long(item)
    if isinstance(item, int | float) and not isinstance(item, bool):
        return [PortSpec(target=_number(str(item), item))]
    return _short(str(item))


def _long(item: dict[str, Any]) -> list[PortSpec]:
    if "target" not in item:
        raise ValueError("a port needs 'target' (the port the app listens on)")
    protocol = _protocol(str(item.get("protocol") or "tcp"), item)
    targets = _range(str(item["target"]), item)
    published = item.get("published")
    host_ip = str(item["host_ip"]) if item.get("host_ip") not in (None, "") else None
    app = str(item["app_protocol"]) if item.get("app_protocol") else None
    written = "" if published is None else str(published)
    return _pair(targets, written, host_ip, protocol, app, f"published: {written}")


def _short(text: str) -> list[PortSpec]:
    item = text
    body, _, written_protocol = text.partition("/")
    protocol = _protocol(written_protocol or "tcp", item)
    host_ip: str | None = None
    if body.startswith("["):  # [IPv6]:published:target
        end = body.find("]")
        if end < 0:
            raise ValueError(f"invalid port '{item}' (unclosed '[' of an IPv6 address)")
        host_ip, body = body[1:end], body[end + 1 :].removeprefix(":")
        parts = body.split(":")
        if len(parts) != 2:
            raise ValueError(f"invalid port '{item}' (expected [IP]:PUBLISHED:TARGET)")
    else:
        parts = body.split(":")
        if len(parts) > 3:
            raise ValueError(f"invalid port '{item}' (expected [[IP:]PUBLISHED:]TARGET)")
        if len(parts) == 3:
            host_ip = parts.pop(0) or None
    targets = _range(parts[-1], item)
    published = parts[0] if len(parts) == 2 else ""
    return _pair(targets, published, host_ip, protocol, None, item)


def _pair(
    targets: list[int],
    published: str,
    host_ip: str | None,
    protocol: PortProtocol,
    app_protocol: str | None,
    item: object,
) -> list[PortSpec]:
    if not published.strip():
        return [
            PortSpec(target=t, host_ip=host_ip, protocol=protocol, app_protocol=app_protocol)
            for t in targets
        ]
    hosts = _range(published, item)
    if len(hosts) != len(targets):
        raise ValueError(
            f"'{item}' publishes {len(hosts)} port(s) for {len(targets)} target(s): give "
            "ranges of the same length (Conveyor does not pick one port of a range)"
        )
    return [
        PortSpec(
            target=t, published=h, host_ip=host_ip, protocol=protocol, app_protocol=app_protocol
        )
        for t, h in zip(targets, hosts, strict=True)
    ]


def _protocol(text: str, item: object) -> PortProtocol:
    protocol = _PROTOCOLS.get(text.lower())
    if protocol is None:
        raise ValueError(f"protocol must be 'tcp' or 'udp', got '{text}' in '{item}'")
    return protocol


def _range(text: str, item: object) -> list[int]:
    """`8000` or `8000-8002` (inclusive), each number within 1..65535."""
    first, dash, last = text.strip().partition("-")
    if not dash:
        return [_number(first, item)]
    lo, hi = _number(first, item), _number(last, item)
    if hi < lo:
        raise ValueError(f"port range '{text}' ends before it starts, in '{item}'")
    return list(range(lo, hi + 1))


def _number(text: str, item: object) -> int:
    try:
        value = to_int(text)
    except ValueError:
        raise ValueError(f"invalid port number '{text}' in '{item}'") from None
    if not PORT_MIN <= value <= PORT_MAX:
        raise ValueError(f"must be between {PORT_MIN} and {PORT_MAX}, got {value}")
    return value
