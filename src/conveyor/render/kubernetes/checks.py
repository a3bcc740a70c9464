"""`conveyor render --check`: kube-score-style findings per service over the rendered base
(our own rules, not kube-score's code): probes present, resources set, a disruption budget
for replicated services, no `latest` or untagged images, non-root, read-only root. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from conveyor.render.kubernetes.objects import Manifest

Level = Literal["ok", "warning", "critical"]
_WORKLOADS = ("Deployment", "StatefulSet", "Job")


@dataclass(frozen=True)
class Finding:
    service: str  # the workload's name
    check: str
    level: Level
    message: str


def check_manifests(manifests: Iterable[Manifest]) -> list[Finding]:
    """Findings for every workload of `manifests`, by service then check."""
    items = list(manifests)
    budgets = {m["metadata"]["name"] for m in items if m["kind"] == "PodDisruptionBudget"}
    scaled = {
        m["spec"]["scaleTargetRef"]["name"]: m["spec"]["minReplicas"]
        for m in items
        if m["kind"] == "HorizontalPodAutoscaler"
    }
    found: list[Finding] = []
    for m in items:
        if m["kind"] not in _WORKLOADS:
            continue
        name = m["metadata"]["name"]
        pod = m["spec"]["template"]["spec"]
        containers: list[dict[str, Any]] = pod["containers"]
        found.extend(_probes(name, m["kind"], containers))
        found.append(_resources(name, containers))
        found.append(_budget(name, m, budgets, scaled))
        found.extend(_images(name, containers))
        found.append(_non_root(name, pod, containers))
        found.append(_read_only(name, containers))
    return sorted(found, key=lambda f: (f.service, f.check))


def _probes(name: str, kind: str, containers: list[dict[str, Any]]) -> list[Finding]:
    if kind == "Job":
        return [Finding(name, "probes", "ok", "a Job runs to completion: no probes needed")]
    out: list[Finding] = []
    ready = all("readinessProbe" in c for c in containers)
    live = all("livenessProbe" in c for c in containers)
    out.append(
        Finding(name, "probes", "ok", "readiness probe set")
        if ready
        else Finding(
            name, "probes", "critical", "no readiness probe: pods get traffic before they serve"
        )
    )
    if not live:
        out.append(
            Finding(
                name,
                "liveness",
                "warning",
                "no liveness probe: a hung process is never restarted (add a healthcheck)",
            )
        )
    return out


def _resources(name: str, containers: list[dict[str, Any]]) -> Finding:
    missing = sorted(
        {
            f"{part}.{res}"
            for c in containers
            for part in ("limits", "requests")
            for res in ("cpu", "memory")
            if res not in c.get("resources", {}).get(part, {})
        }
    )
    if not missing:
        return Finding(name, "resources", "ok", "CPU and memory requests and limits set")
    return Finding(
        name,
        "resources",
        "critical",
        f"unset: {', '.join(missing)} (deploy.resources.limits / reservations)",
    )


def _budget(name: str, m: Manifest, budgets: set[str], scaled: dict[str, int]) -> Finding:
    replicas = scaled.get(name, m["spec"].get("replicas", 1))
    if m["kind"] == "Job" or replicas <= 1:
        return Finding(name, "disruption-budget", "ok", f"{replicas} replica: none needed")
    if name in budgets:
        return Finding(name, "disruption-budget", "ok", f"{replicas} replicas, budget set")
    return Finding(name, "disruption-budget", "critical", f"{replicas} replicas and no budget")


def _images(name: str, containers: list[dict[str, Any]]) -> list[Finding]:
    out: list[Finding] = []
    for c in containers:
        image: str = c["image"]
        if "@sha256:" in image:
            out.append(Finding(name, "image-tag", "ok", f"{image}: pinned by digest"))
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.partition(":")[2]
        if not tag or tag == "latest":
            out.append(
                Finding(
                    name, "image-tag", "critical", f"{image}: untagged or latest (not reproducible)"
                )
            )
        else:
            out.append(Finding(name, "image-tag", "ok", f"{image}: tagged {tag}"))
    return out


def _non_root(name: str, pod: dict[str, Any], containers: list[dict[str, Any]]) -> Finding:
    context = pod.get("securityContext", {})
    privileged = any(c.get("securityContext", {}).get("privileged") for c in containers)
    if not context.get("runAsNonRoot") or context.get("runAsUser", 1) == 0 or privileged:
        return Finding(name, "non-root", "critical", "may run as root or privileged")
    if "runAsUser" not in context:
        # The kubelet checks the image's USER at start: root, or a name it cannot prove
        # non-root, and the pod never starts (the official PostgreSQL and Redis images).
        return Finding(
            name,
            "non-root",
            "warning",
            "runAsNonRoot without a user id: an image whose USER is root or a name will not "
            "start (set user: UID in compose.yaml)",
        )
    return Finding(name, "non-root", "ok", "runAsNonRoot as a user id, not privileged")


def _read_only(name: str, containers: list[dict[str, Any]]) -> Finding:
    if all(c.get("securityContext", {}).get("readOnlyRootFilesystem") for c in containers):
        return Finding(name, "read-only-root", "ok", "read-only root filesystem")
    return Finding(
        name,
        "read-only-root",
        "warning",
        "writable root filesystem (set read_only: true, with tmpfs for scratch paths)",
    )
