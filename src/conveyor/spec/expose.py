"""`expose`: ports a service listens on for other services (never published on the host)."""

from __future__ import annotations

from typing import Any, Literal

from conveyor.model.stack import ExposedPort
from conveyor.spec.context import Context
from conveyor.spec.yamlpos import YamlPath

MAX_RANGE = 1024  # a range wider than this is a typo, not a service's ports
_PROTOCOLS: dict[str, Literal["tcp", "udp"]] = {"tcp": "tcp", "udp": "udp"}


def exposed_ports(ctx: Context, path: YamlPath, raw: Any) -> tuple[ExposedPort, ...]:
    out: list[ExposedPort] = []
    for index, item in enumerate(raw or ()):
        text, _, written_protocol = str(item).partition("/")
        protocol = _PROTOCOLS.get(written_protocol or "tcp")
        first, _, last = text.partition("-")
        try:
            start, end = int(first), int(last or first)
        except ValueError:
            ctx.error((*path, index), f"invalid port '{item}' (expected PORT[-PORT][/PROTOCOL])")
            continue
        if protocol is None:
            ctx.error((*path, index), f"protocol must be tcp or udp, got '{written_protocol}'")
        elif not 1 <= start <= end <= 65535:
            ctx.error((*path, index), f"ports must be between 1 and 65535, got '{item}'")
        elif end - start >= MAX_RANGE:
            ctx.error((*path, index), f"a range of more than {MAX_RANGE} ports, got '{item}'")
        else:
            out.extend(ExposedPort(port=p, protocol=protocol) for p in range(start, end + 1))
    return tuple(out)
