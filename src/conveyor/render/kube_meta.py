"""What the Kubernetes-side renderers (kube_observe, flux, flagger) agree on with the
workload renderer: names, labels, the namespace of an environment, and how a list of objects
becomes a file. Pure: no I/O.

The agreement (docs/flux.md): an environment `<env>` of project `<project>` runs in namespace
`<project>-<env>` (the same name as its Conveyor project on a Docker host); a compose service
`<svc>` is a Deployment and a Service named `<svc>`, whose pods carry
`app.kubernetes.io/name: <svc>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from conveyor.model.stack import DEFAULT_APP_PORT, Service, Stack

NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
# On every monitoring object (ServiceMonitor, PodMonitor, PrometheusRule): the Prometheus
# resource's selectors pick Conveyor's objects by it.
MONITORING_LABELS: Mapping[str, str] = {MANAGED_BY_LABEL: "conveyor"}
HEADER = "# Rendered by Conveyor. The next render rewrites it.\n"
FLUX_NAMESPACE = "flux-system"  # where Flux's own objects (and its ImagePolicies) live


@dataclass(frozen=True)
class KubeEnvironment:
    """One environment of the project as the cluster runs it: its stack with conveyor.yaml's
    overrides for the environment applied (spec.overrides.apply_overrides)."""

    project: str  # the compose project's name (the base of `<project>-<env>`)
    name: str  # the environment's name
    stack: Stack

    @property
    def namespace(self) -> str:
        return namespace(self.project, self.name)


def namespace(project: str, environment: str) -> str:
    return f"{project}-{environment}"


def http_port(service: Service) -> int | None:
    """The port a service's pods answer HTTP on: x-conveyor.port, else its one published or
    exposed port, else Conveyor's default when it has a probe; None for a service with no
    HTTP port."""
    if service.routing.port is not None:
        return service.routing.port
    targets = [p.target for p in service.ports if p.protocol == "tcp"] + service.exposed_tcp()
    if targets:
        return targets[0]
    return DEFAULT_APP_PORT if service.routing.probe is not None else None


def metadata(
    name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    if labels:
        out["labels"] = dict(labels)
    return out


def dump(objects: Sequence[Mapping[str, Any]]) -> str:
    """Objects as one multi-document YAML file: key order as built (apiVersion, kind,
    metadata, spec reads as people write it), no line folding (PromQL stays on one line)."""
    body = yaml.safe_dump_all(
        [dict(o) for o in objects], sort_keys=False, default_flow_style=False, width=10_000
    )
    return HEADER + body


def kustomization(resources: Iterable[str], namespace: str | None = None) -> str:
    """A kustomization.yaml listing `resources` (files or directories, in order)."""
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    }
    if namespace is not None:
        doc["namespace"] = namespace
    doc["resources"] = list(resources)
    return dump([doc])


def load_all(text: str) -> list[dict[str, Any]]:
    """The objects of a rendered file (tests and validators read them back)."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def image_setter(service: str, part: str = "tag") -> str:
    """The marker Flux's Setters strategy rewrites: put it as the comment of the overlay's
    `images:` entry (`newTag: 1.2.0 # {"$imagepolicy": "flux-system:web:tag"}`)."""
    return f'{{"$imagepolicy": "{FLUX_NAMESPACE}:{service}:{part}"}}'
