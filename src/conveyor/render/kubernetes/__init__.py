"""Kubernetes manifests from a Compose project: a Kustomize base and one overlay per
environment (docs/kubernetes.md). Pure: `render_kubernetes` returns file texts, the caller
writes them and runs `KUSTOMIZE` (kubectl kustomize) through host.validate."""

from conveyor.render.kubernetes.checks import Finding, check_manifests
from conveyor.render.kubernetes.config import SOPS_ANNOTATION
from conveyor.render.kubernetes.layout import (
    DEFAULT_ENVIRONMENT,
    KUSTOMIZE,
    Rendering,
    render_kubernetes,
    secrets_to_encrypt,
)
from conveyor.render.kubernetes.objects import GatewayRef, KubeOptions, KubeWarning

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "KUSTOMIZE",
    "SOPS_ANNOTATION",
    "Finding",
    "GatewayRef",
    "KubeOptions",
    "KubeWarning",
    "Rendering",
    "check_manifests",
    "render_kubernetes",
    "secrets_to_encrypt",
]
