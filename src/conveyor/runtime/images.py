"""Facts read from `docker image inspect` output (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def exposed_tcp_ports(inspected: Mapping[str, Any]) -> list[int]:
    """The TCP ports an image declares with `EXPOSE`, sorted."""
    exposed = (inspected.get("Config") or {}).get("ExposedPorts") or {}
    return sorted(int(key.split("/")[0]) for key in exposed if key.endswith("/tcp"))
