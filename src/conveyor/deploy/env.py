"""The environment and host names a replica is started with (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.stack import Service


def env_name(service: str) -> str:
    """`orders-api` -> `ORDERS_API`, the prefix of its discovery variables."""
    return "".join(c if c.isalnum() else "_" for c in service).upper()


def replica_env(
    service: Service,
    *,
    project: str,
    replica: str,
    release: int,
    port: int,
    frontends: Mapping[str, int] | None = None,
    peers: Mapping[str, Endpoint] | None = None,
    listen_host: str = LOOPBACK,
) -> dict[str, str]:
    """Service environment + twelve-factor PORT and HOST + one `<NAME>_SERVICE_HOST/PORT` pair
    per routed service (Kubernetes' convention).

    Host networking: `port` is the replica's own port and `frontends` the services' HAProxy
    frontends on loopback. Project networks: `port` is the app port (0: none, PORT is not
    set), `peers` where each service is reached by name, and `listen_host` 0.0.0.0 (the
    replica's namespace is its own; loopback would hide it from HAProxy)."""
    announced = dict(peers or {})
    if peers is None:
        announced = {name: Endpoint.loopback(fport) for name, fport in (frontends or {}).items()}
    env: dict[str, str] = {}
    for name, where in sorted(announced.items()):
        env[f"{env_name(name)}_SERVICE_HOST"] = where.host
        env[f"{env_name(name)}_SERVICE_PORT"] = str(where.port)
    env.update(service.environment)
    if port:
        env["PORT"] = str(port)
    env.update(
        {
            "HOST": listen_host,
            "CONVEYOR_PROJECT": project,
            "CONVEYOR_SERVICE": service.name,
            "CONVEYOR_REPLICA": replica,
            "CONVEYOR_RELEASE": str(release),
        }
    )
    return env


def replica_hosts(frontends: Mapping[str, int]) -> dict[str, str]:
    """Service names resolve to loopback inside replicas (host networking + --add-host)."""
    return {name: "127.0.0.1" for name in frontends}
