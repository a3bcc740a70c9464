"""Where something answers: a host and a port.

Replicas on the host's network answer on 127.0.0.1; replicas on a project network (per-replica
namespaces) and replicas on other hosts of a fleet answer elsewhere. Probes, HAProxy servers and
the runtime's reports carry an Endpoint, never a bare port."""

from __future__ import annotations

from conveyor.model.stack import Frozen

LOOPBACK = "127.0.0.1"


class Endpoint(Frozen):
    host: str = LOOPBACK
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def loopback(cls, port: int) -> Endpoint:
        return cls(host=LOOPBACK, port=port)
