"""One environment's stack: the compose file's Stack with `conveyor.yaml`'s overrides applied.

Pure. Each environment runs as its own project (`<project>-<environment>`: own containers,
volumes, frontends and state), with per-service replicas, environment variables and published
ports from its `overrides`, service level objectives from its `slo` (replacing the
compose file's `x-conveyor.slo` of that service), and the thresholds of every service's
alerts from its `alerts` (where the service's own `x-conveyor.alerts` sets none). An
override (or an `slo`) that names a service the compose file lacks, or a port the service
does not publish, is an error pointing at conveyor.yaml: silently deploying production with
staging's settings is worse than refusing.
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import SpecError
from conveyor.model.environments import EnvironmentSpec, ServiceOverride
from conveyor.model.stack import Service, Stack
from conveyor.spec.context import raise_errors
from conveyor.spec.values import suggest


def apply_overrides(stack: Stack, env: EnvironmentSpec) -> Stack:
    """`stack` as environment `env` runs it. Raises SpecError/SpecErrors (at the override's
    line in conveyor.yaml) for overrides that do not fit the stack."""
    errors: list[SpecError] = []
    services = dict(stack.services)
    for name, override in env.overrides.items():
        where = ("overrides", name)
        service = services.get(name)
        if service is None:
            hint = suggest(name, services) or f" (it has {_listed(services)})"
            errors.append(_error(env, where, f"service '{name}' is not in the compose file{hint}"))
            continue
        services[name] = _service(env, service, override, errors)
    for name, slo in env.slo.items():
        service = services.get(name)
        if service is None:
            hint = suggest(name, services) or f" (it has {_listed(services)})"
            errors.append(
                _error(env, ("slo", name), f"service '{name}' is not in the compose file{hint}")
            )
            continue
        services[name] = service.model_copy(update={"slo": slo})
    if env.alerts is not None:
        # The environment's thresholds fill in what each service's own leave unset.
        for name, service in services.items():
            merged = service.alerts.over(env.alerts) if service.alerts else env.alerts
            services[name] = service.model_copy(update={"alerts": merged})
    _check_published(env, services, errors)
    raise_errors(errors)
    return stack.model_copy(update={"project": env.project(stack.project), "services": services})


def _service(
    env: EnvironmentSpec, service: Service, override: ServiceOverride, errors: list[SpecError]
) -> Service:
    update: dict[str, Any] = {}
    if override.replicas is not None:
        update["replicas"] = override.replicas
    if override.environment:
        update["environment"] = {**service.environment, **override.environment}
    published = _published(service)
    for source in override.ports:
        if source not in published:
            what = f"it publishes {_listed(published)}" if published else "it publishes none"
            message = f"service '{service.name}' does not publish port {source} ({what})"
            errors.append(_error(env, ("overrides", service.name, "ports", str(source)), message))
    remap = override.ports
    public = service.routing.public_port
    if public is not None and public in remap:
        update["routing"] = service.routing.model_copy(update={"public_port": remap[public]})
    if any(p.published in remap for p in service.ports):
        # Every `ports:` entry publishing it moves (TCP and UDP alike: the host port is taken).
        update["ports"] = tuple(
            p.model_copy(update={"published": remap[p.published]})
            if p.published is not None and p.published in remap
            else p
            for p in service.ports
        )
    return service.model_copy(update=update) if update else service


def _published(service: Service) -> list[int]:
    """The host ports a service publishes, in the order the file gives them."""
    found: list[int] = []
    if service.routing.public_port is not None:
        found.append(service.routing.public_port)
    for port in service.ports:
        if port.published is not None and port.published not in found:
            found.append(port.published)
    return found


def _check_published(
    env: EnvironmentSpec, services: dict[str, Service], errors: list[SpecError]
) -> None:
    """After remapping, no two services of the environment publish the same host port (only
    ports an override moved to are checked: the compose file's own are its loader's concern)."""
    moved = {new for override in env.overrides.values() for new in override.ports.values()}
    owner: dict[int, str] = {}
    for name in sorted(services):
        for port in _published(services[name]):
            if port not in moved:
                continue
            other = owner.setdefault(port, name)
            if other != name:
                where = ("overrides", name) if name in env.overrides else ("overrides",)
                message = (
                    f"services '{other}' and '{name}' would both publish port {port} "
                    "in this environment; remap one of them"
                )
                errors.append(_error(env, where, message))


def _error(env: EnvironmentSpec, path: tuple[str, ...], message: str) -> SpecError:
    field = ".".join(("environments", env.name, *path))
    return SpecError(env.file, env.line(*path), field, message)


def _listed(items: Any) -> str:
    return ", ".join(str(item) for item in sorted(items))
