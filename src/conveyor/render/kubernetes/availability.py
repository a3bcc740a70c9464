"""Availability: a PodDisruptionBudget per replicated service, spreading over zones and
nodes, and a HorizontalPodAutoscaler from `x-conveyor.autoscale`. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.model.stack import Service, Stack
from conveyor.render.kubernetes.names import dns_label, labels, pod_selector
from conveyor.render.kubernetes.objects import Collected, Manifest, manifest, meta

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
# The per-pod request rate a metrics adapter (prometheus-adapter) must serve for RPS targets.
RPS_METRIC = "http_requests_per_second"


def spread(match: Mapping[str, object]) -> list[Manifest]:
    """Replicas spread across zones and nodes; ScheduleAnyway, so a small cluster (one zone,
    few nodes) still schedules every replica. `match`: a LabelSelector."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": dict(match),
        }
        for key in (ZONE, HOSTNAME)
    ]


def replicated(service: Service) -> bool:
    low = service.autoscale.min if service.autoscale else service.replicas
    return low > 1


def disruption_budget(stack: Stack, service: Service, canaried: bool = False) -> Manifest:
    """At most one replica evicted at a time (drains, upgrades); `canaried`: counting the
    pods of Flagger's primary too."""
    return manifest(
        "policy/v1",
        "PodDisruptionBudget",
        meta(dns_label(service.name), labels(stack.project, service)),
        spec={"maxUnavailable": 1, "selector": pod_selector(stack.project, service, canaried)},
    )


def autoscaler(stack: Stack, service: Service, kind: str, out: Collected) -> Manifest | None:
    scale = service.autoscale
    if scale is None:
        return None
    path = ("services", service.name, "x-conveyor", "autoscale")
    metrics: list[Manifest] = []
    if scale.cpu is not None:
        if not (service.reservations.cpus or service.limits.cpus):
            out.warn(
                (*path, "cpu"),
                "a CPU target is a share of the CPU request: set "
                "deploy.resources.reservations.cpus (or limits.cpus), or the autoscaler "
                "cannot compute utilisation",
            )
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": scale.cpu},
                },
            }
        )
    if scale.rps is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": RPS_METRIC},
                    "target": {"type": "AverageValue", "averageValue": _quantity(scale.rps)},
                },
            }
        )
    name = dns_label(service.name)
    return manifest(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        meta(name, labels(stack.project, service)),
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name},
            "minReplicas": scale.min,
            "maxReplicas": scale.max,
            "metrics": metrics,
        },
    )


def _quantity(rate: float) -> str:
    if rate == int(rate):
        return str(int(rate))
    return f"{round(rate * 1000)}m"
