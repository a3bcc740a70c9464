"""Progressive delivery on Kubernetes (issue 13, item 7): a Flagger Canary per HTTP service
whose `x-conveyor.canary` asks for one, and the MetricTemplates its analysis reads. Pure.

Flagger watches the Deployment named as the service; on a new pod template it starts the
canary's pods, moves traffic to them in steps through the Gateway API (Flagger writes the
service's HTTPRoute itself), and checks at every interval the canary's error ratio and p99
latency, read from the replicas' own `http_request_duration_seconds` histogram, the series
the RED and SLO latency rules read (`render.prometheus_rules.HISTOGRAMS`, with the labels
`render.kube_observe`'s monitors give it). Past `threshold` failed checks it routes every
request back to the primary.

The error ratio needs a `code` label (the HTTP status) on that histogram; a histogram without
one reads as no errors (docs/flux.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.model.stack import Service
from conveyor.render.kube_meta import KubeEnvironment, http_port, metadata
from conveyor.render.kube_observe import DEFAULT_PROMETHEUS
from conveyor.render.kubernetes.names import dns_label
from conveyor.render.kubernetes.workloads import kind_of
from conveyor.render.prometheus_rules import HISTOGRAMS, duration, number

FLAGGER_API = "flagger.app/v1beta1"


PROGRESS_DEADLINE = 600  # seconds without progress before Flagger rolls back


@dataclass(frozen=True)
class GatewayRef:
    """The Gateway (Gateway API) Flagger attaches each canary's HTTPRoute to."""

    name: str = "conveyor"
    namespace: str = "gateway"


def _selector(service: str) -> str:
    """The canary's pods only: `<target>-<replicaset hash>-<pod id>` (the primary's pods are
    `<target>-primary-...`, one part more)."""
    _, job = HISTOGRAMS[0]
    return (
        f'{job},project="{{{{ namespace }}}}",service="{service}",'
        f'pod=~"{{{{ target }}}}-[0-9a-zA-Z]+-[0-9a-zA-Z]+"'
    )


def error_ratio_query(service: str) -> str:
    metric = HISTOGRAMS[0][0]
    sel = _selector(service)
    errors = f'sum(rate({metric}_count{{{sel},code=~"5.."}}[{{{{ interval }}}}]))'
    total = f"sum(rate({metric}_count{{{sel}}}[{{{{ interval }}}}]))"
    return f"({errors} or vector(0)) / {total}"


def latency_query(service: str) -> str:
    metric = HISTOGRAMS[0][0]
    buckets = f"sum by (le) (rate({metric}_bucket{{{_selector(service)}}}[{{{{ interval }}}}]))"
    return f"histogram_quantile(0.99, {buckets})"


def metric_templates(
    env: KubeEnvironment, service: Service, prometheus_url: str = DEFAULT_PROMETHEUS
) -> list[dict[str, Any]]:
    """The two checks of one service's canary, in its namespace."""
    provider = {"type": "prometheus", "address": prometheus_url}
    return [
        {
            "apiVersion": FLAGGER_API,
            "kind": "MetricTemplate",
            "metadata": metadata(f"{service.name}-{suffix}", env.namespace),
            "spec": {"provider": provider, "query": query},
        }
        for suffix, query in (
            ("error-ratio", error_ratio_query(service.name)),
            ("latency", latency_query(service.name)),
        )
    ]


def canary(
    env: KubeEnvironment, service: Service, gateway: GatewayRef = GatewayRef()
) -> dict[str, Any] | None:
    """The Canary of one service, None when it asks for none (or has no HTTP port, which
    spec.canary refuses)."""
    spec = service.canary
    port = http_port(service)
    # Flagger canaries Deployments; a service rendered as a StatefulSet or a Job gets none
    if spec is None or port is None or kind_of(env.stack, service) != "Deployment":
        return None
    interval = duration(spec.interval)
    analysis: dict[str, Any] = {"interval": interval, "threshold": spec.threshold}
    if spec.steps:
        analysis["stepWeights"] = list(spec.steps)
    else:
        analysis["maxWeight"] = spec.max_weight
        analysis["stepWeight"] = spec.step_weight
    analysis["metrics"] = [
        {
            "name": name,
            "templateRef": {"name": f"{service.name}-{suffix}", "namespace": env.namespace},
            "thresholdRange": {"max": float(number(limit))},
            "interval": interval,
        }
        for name, suffix, limit in (
            ("error-ratio", "error-ratio", spec.max_error_ratio),
            ("latency-p99", "latency", spec.max_latency),
        )
    ]
    return {
        "apiVersion": FLAGGER_API,
        "kind": "Canary",
        "metadata": metadata(service.name, env.namespace),
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name},
            "progressDeadlineSeconds": PROGRESS_DEADLINE,
            "service": {
                "port": port,
                "targetPort": port,
                "gatewayRefs": [{"name": gateway.name, "namespace": gateway.namespace}],
            },
            "analysis": analysis,
            # the HorizontalPodAutoscaler render.kubernetes writes: Flagger scales the
            # primary with a copy of it
            **(
                {
                    "autoscalerRef": {
                        "apiVersion": "autoscaling/v2",
                        "kind": "HorizontalPodAutoscaler",
                        "name": dns_label(service.name),
                    }
                }
                if service.autoscale is not None
                else {}
            ),
        },
    }


def canaries(
    env: KubeEnvironment,
    gateway: GatewayRef = GatewayRef(),
    prometheus_url: str = DEFAULT_PROMETHEUS,
) -> list[dict[str, Any]]:
    """Every Canary of the environment with its MetricTemplates, by service name."""
    out: list[dict[str, Any]] = []
    for _, service in sorted(env.stack.services.items()):
        found = canary(env, service, gateway)
        if found is not None:
            out += [*metric_templates(env, service, prometheus_url), found]
    return out
