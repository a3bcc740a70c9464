"""Kubernetes names, labels and quantities for Compose things. Pure.

Compose service names allow `_`, `.` and capitals; a Service's name must be a DNS-1035 label
(lowercase letters, digits, `-`, starting with a letter), so a name is lowered and its other
characters become `-`. The Service keeps the Compose name whenever it is already valid, which
is what lets `db:5432` resolve in the cluster as it does under Compose.
"""

from __future__ import annotations

import math
import re

from conveyor.model.stack import Service

_INVALID = re.compile(r"[^a-z0-9-]+")
_MAX = 63

NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
# One label per Compose network a pod is on; NetworkPolicies select pods by them.
NETWORK_PREFIX = "network.conveyor.dev/"


def dns_label(name: str) -> str:
    """`name` as a DNS-1035 label (a Service's or a workload's name)."""
    label = _INVALID.sub("-", name.lower()).strip("-")
    if not label or not label[0].isalpha():
        label = f"s-{label}".rstrip("-")
    return label[:_MAX].rstrip("-")


def renamed(name: str) -> bool:
    """True when Kubernetes cannot use the Compose name as it is."""
    return dns_label(name) != name


def network_label(network: str) -> str:
    return NETWORK_PREFIX + dns_label(network)


def selector(project: str, service: Service) -> dict[str, str]:
    """The labels that pick a service's pods (never changed once deployed)."""
    return {NAME: dns_label(service.name), PART_OF: dns_label(project)}


# Flagger's primary Deployment of a canaried `<svc>` (docs/flux.md) is `<svc>-primary`: its
# pods carry every label of ours, except that the selector label (`app.kubernetes.io/name`,
# one of Flagger's defaults) is rewritten to `<svc>-primary`. Flagger rewrites the same label
# in the match expressions (not matchLabels) of topology spread constraints and anti-affinity.
PRIMARY_SUFFIX = "-primary"


def pod_selector(project: str, service: Service, canaried: bool = False) -> dict[str, object]:
    """A LabelSelector for the service's pods; for a service Flagger canaries, its pods and
    those of the primary Flagger makes (a PodDisruptionBudget or NetworkPolicy of ours must
    cover the primary's pods, which serve the traffic; one selector for both, since the
    eviction API refuses a pod two budgets select)."""
    if not canaried:
        return {"matchLabels": selector(project, service)}
    name = dns_label(service.name)
    return {
        "matchLabels": {PART_OF: dns_label(project)},
        "matchExpressions": [
            {"key": NAME, "operator": "In", "values": [name, name + PRIMARY_SUFFIX]}
        ],
    }


def spread_selector(project: str, service: Service, canaried: bool = False) -> dict[str, object]:
    """The selector a Deployment's topology spread constraints count its own pods by; for a
    canaried one, its name as a match expression, which Flagger rewrites to `<svc>-primary`
    in the primary (matchLabels it leaves alone: the primary would spread by the canary's)."""
    if not canaried:
        return {"matchLabels": selector(project, service)}
    return {
        "matchLabels": {PART_OF: dns_label(project)},
        "matchExpressions": [{"key": NAME, "operator": "In", "values": [dns_label(service.name)]}],
    }


def labels(project: str, service: Service) -> dict[str, str]:
    return {**selector(project, service), MANAGED_BY: "conveyor"}


def cpu_quantity(cpus: float) -> str:
    """0.5 -> `500m`, 2.0 -> `2` (millicores, rounded up: never below what Compose asked)."""
    milli = math.ceil(round(cpus * 1000, 6))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_quantity(size: int) -> str:
    """Bytes as the largest binary unit that divides them exactly (`128Mi`), else bytes."""
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size % factor == 0 and size >= factor:
            return f"{size // factor}{unit}"
    return str(size)


def seconds(value: float) -> int:
    """A duration in whole seconds, rounded up (Kubernetes counts seconds)."""
    return max(0, math.ceil(round(value, 6)))
