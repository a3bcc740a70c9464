"""Readiness, liveness and startup probes from Compose `healthcheck` and `x-conveyor.probe`.
Pure.

`x-conveyor.probe` is an HTTP check on the main port: it becomes the readiness probe (and the
startup probe, whose budget is the probe's `start_timeout`). A `healthcheck` becomes an exec
probe with its interval, timeout and retries: the liveness probe (and the readiness probe when
there is no HTTP probe); its `start_period` becomes the startup probe. A service with neither
but a port gets a TCP readiness probe, so no pod takes traffic before it listens.
"""

from __future__ import annotations

import math

from conveyor.model.stack import Healthcheck, Service
from conveyor.render.kubernetes.config import main_port
from conveyor.render.kubernetes.names import seconds
from conveyor.render.kubernetes.objects import Manifest


def _period(value: float) -> int:
    return max(1, seconds(value))


def _exec(check: Healthcheck) -> Manifest | None:
    kind, *rest = check.test or ("NONE",)
    if kind == "CMD" and rest:
        return {"exec": {"command": list(rest)}}
    if kind == "CMD-SHELL" and rest:
        return {"exec": {"command": ["/bin/sh", "-c", " ".join(rest)]}}
    return None


def probes(service: Service) -> dict[str, Manifest]:
    """The container's probe fields (`readinessProbe`, `livenessProbe`, `startupProbe`)."""
    out: dict[str, Manifest] = {}
    port = main_port(service)
    http = service.routing.probe
    check = service.healthcheck
    action = _exec(check) if check is not None else None
    if http is not None and port is not None:
        period = _period(http.interval)
        out["readinessProbe"] = {
            "httpGet": {"path": http.path, "port": port},
            "periodSeconds": period,
            "timeoutSeconds": _period(http.timeout),
            "failureThreshold": 2,
            "successThreshold": 1,
        }
        out["startupProbe"] = {
            "httpGet": {"path": http.path, "port": port},
            "periodSeconds": period,
            "timeoutSeconds": _period(http.timeout),
            "failureThreshold": max(1, math.ceil(http.start_timeout / period)),
        }
    if action is not None and check is not None:
        timing: Manifest = {
            "periodSeconds": _period(check.interval),
            "timeoutSeconds": _period(check.timeout),
            "failureThreshold": max(1, check.retries),
        }
        out["livenessProbe"] = {**action, **timing}
        if "readinessProbe" not in out:
            out["readinessProbe"] = {**action, **timing}
        if check.start_period > 0 and "startupProbe" not in out:
            every = _period(check.start_interval)
            out["startupProbe"] = {
                **action,
                "periodSeconds": every,
                "timeoutSeconds": _period(check.timeout),
                "failureThreshold": max(1, math.ceil(check.start_period / every)),
            }
    if "readinessProbe" not in out and port is not None:
        out["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 5}
    return out


def ready_window(service: Service) -> float:
    """How long a new replica may take to become ready (seconds)."""
    if service.routing.probe is not None:
        return service.routing.probe.start_timeout
    check = service.healthcheck
    if check is not None and _exec(check) is not None:
        return check.start_period + check.interval * max(1, check.retries)
    return 60.0
