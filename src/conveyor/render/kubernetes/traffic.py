"""Traffic: a Service per Compose service carrying each of its ports (named as in Compose, so
`db:5432` resolves), HTTPRoutes (Gateway API) or Ingresses for published HTTP ports, and
NetworkPolicies from Compose networks: ingress is denied by default, allowed between pods
that share a network, and from anywhere to published ports. Egress is left open (DNS,
external APIs). Pure."""

from __future__ import annotations

import json

from conveyor.model.stack import Service, Stack
from conveyor.render.kubernetes.config import main_port
from conveyor.render.kubernetes.names import (
    dns_label,
    labels,
    network_label,
    pod_selector,
    renamed,
    selector,
)
from conveyor.render.kubernetes.objects import (
    Collected,
    KubeOptions,
    Manifest,
    manifest,
    meta,
)
from conveyor.render.kubernetes.workloads import canaried


def service_ports(service: Service) -> list[tuple[int, str]]:
    """(port, protocol) the Service carries: the main port first, then `ports:`, `expose:`."""
    found: list[tuple[int, str]] = []
    main = main_port(service)
    if main is not None:
        found.append((main, "TCP"))
    # A metrics port of its own is carried too, so a ServiceMonitor can name it.
    metrics = service.metrics.port if service.metrics is not None else None
    for port, proto in (
        [(p.target, p.protocol) for p in service.ports]
        + [(e.port, e.protocol) for e in service.expose]
        + ([(metrics, "tcp")] if metrics is not None else [])
    ):
        if (port, proto.upper()) not in found:
            found.append((port, proto.upper()))
    return found


def http_ports(service: Service) -> set[int]:
    http = set(service.http_ports())
    if service.networking == "host" and service.routing.port is not None:
        http.add(service.routing.port)
    return http


def published(service: Service) -> list[tuple[int, int, bool]]:
    """(target, published, http) of every port published on the host."""
    out: dict[int, tuple[int, int, bool]] = {}
    http = http_ports(service)
    main = main_port(service)
    if service.routing.public_port is not None and main is not None:
        out[main] = (main, service.routing.public_port, main in http)
    for p in service.ports:
        if p.published is not None and p.target not in out and p.protocol == "tcp":
            out[p.target] = (p.target, p.published, p.target in http)
    return [out[k] for k in sorted(out)]


def services(stack: Stack, service: Service, kind: str, out: Collected) -> list[Manifest]:
    ports = service_ports(service)
    if not ports:
        return []
    name = dns_label(service.name)
    if renamed(service.name):
        out.warn(
            ("services", service.name),
            f"'{service.name}' is not a valid Kubernetes Service name: rendered as '{name}', "
            "so other services must call it by that name",
        )
    entries = [
        {"name": _port_name(port, proto), "port": port, "targetPort": port, "protocol": proto}
        for port, proto in ports
    ]
    result = [
        manifest(
            "v1",
            "Service",
            meta(name, labels(stack.project, service)),
            spec={"selector": selector(stack.project, service), "ports": entries},
        )
    ]
    if kind == "StatefulSet":
        result.append(
            manifest(
                "v1",
                "Service",
                meta(f"{name}-pods", labels(stack.project, service)),
                spec={
                    "clusterIP": "None",
                    "selector": selector(stack.project, service),
                    "ports": entries,
                },
            )
        )
    return result


def _port_name(port: int, proto: str) -> str:
    return f"{proto.lower()}-{port}"


def routes(stack: Stack, service: Service, options: KubeOptions, out: Collected) -> list[Manifest]:
    """An HTTPRoute (or Ingress) per published HTTP port; other published ports are warned."""
    name = dns_label(service.name)
    found: list[Manifest] = []
    for index, (target, public, http) in enumerate(published(service)):
        if not http:
            out.warn(
                ("services", service.name, "ports"),
                f"published TCP port {public} is reachable inside the cluster only (Service "
                f"{name}:{target}); expose it with a LoadBalancer Service or a TCPRoute",
            )
            continue
        route = route_name(service, index, target)
        backend_port = {"number": target}
        if options.traffic == "ingress":
            spec: Manifest = {
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": name, "port": backend_port}},
                                }
                            ]
                        }
                    }
                ]
            }
            if options.ingress_class:
                spec["ingressClassName"] = options.ingress_class
            found.append(
                manifest(
                    "networking.k8s.io/v1",
                    "Ingress",
                    meta(route, labels(stack.project, service)),
                    spec=spec,
                )
            )
            continue
        parent: Manifest = {"name": options.gateway.name, "port": public}
        if options.gateway.namespace:
            parent["namespace"] = options.gateway.namespace
        found.append(
            manifest(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                meta(route, labels(stack.project, service)),
                spec={
                    "parentRefs": [parent],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"name": name, "port": target}],
                        }
                    ],
                },
            )
        )
    return found


def route_name(service: Service, index: int, target: int) -> str:
    """The HTTPRoute (or Ingress) of the `index`th published port."""
    name = dns_label(service.name)
    return name if index == 0 else f"{name}-{target}"


def gateway_port_patches(service: Service, moved: dict[int, int]) -> list[Manifest]:
    """Kustomize patches that move a service's HTTPRoutes to another Gateway listener port
    (conveyor.yaml `overrides.<svc>.ports`: published port -> this environment's)."""
    patches: list[Manifest] = []
    for index, (target, public, http) in enumerate(published(service)):
        if not http or public not in moved:
            continue
        op = [{"op": "replace", "path": "/spec/parentRefs/0/port", "value": moved[public]}]
        patches.append(
            {
                "target": {
                    "group": "gateway.networking.k8s.io",
                    "version": "v1",
                    "kind": "HTTPRoute",
                    "name": route_name(service, index, target),
                },
                "patch": json.dumps(op, sort_keys=True),
            }
        )
    return patches


def network_policies(stack: Stack) -> list[Manifest]:
    """Default deny of ingress, one allow per Compose network, one per published service."""
    project = {
        "app.kubernetes.io/part-of": dns_label(stack.project),
        "app.kubernetes.io/managed-by": "conveyor",
    }
    policies = [
        manifest(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            meta("default-deny-ingress", project),
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
        )
    ]
    networks: set[str] = set()
    for service in stack.services.values():
        networks.update(service.networks or ("default",))
    for network in sorted(networks):
        match = {"matchLabels": {network_label(network): "true"}}
        policies.append(
            manifest(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                meta(f"network-{dns_label(network)}", project),
                spec={
                    "podSelector": match,
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": match}]}],
                },
            )
        )
    for service in sorted(stack.services.values(), key=lambda s: s.name):
        ports = published(service)
        if not ports:
            continue
        policies.append(
            manifest(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                meta(f"{dns_label(service.name)}-published", project),
                spec={
                    # Flagger's primary pods (`<svc>-primary`) take a canaried service's
                    # traffic: they are let in too. (The network policies above select by
                    # network labels, which Flagger copies to the primary's pods.)
                    "podSelector": pod_selector(stack.project, service, canaried(stack, service)),
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {"ports": [{"port": target, "protocol": "TCP"} for target, _p, _h in ports]}
                    ],
                },
            )
        )
    return policies
