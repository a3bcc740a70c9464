"""The environment and host names a replica is started with (pure)."""

from __future__ import annotations

from collections.abc import Mapping

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
    frontends: Mapping[str, int],
) -> dict[str, str]:
    """Service environment + twelve-factor PORT + one `<NAME>_SERVICE_HOST/PORT` pair per routed
    service (Kubernetes' convention), pointing at that service's HAProxy frontend."""
    env: dict[str, str] = {}
    for name, fport in sorted(frontends.items()):
        env[f"{env_name(name)}_SERVICE_HOST"] = "127.0.0.1"
        env[f"{env_name(name)}_SERVICE_PORT"] = str(fport)
    env.update(service.environment)
    env.update(
        {
            "PORT": str(port),
            "HOST": "127.0.0.1",
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
