"""What the Kubernetes renderers share: a manifest as a plain mapping, the warnings about
what Kubernetes cannot express (each pointing at the compose key, resolved to file:line by
the caller, since render/ knows nothing of files), and the rendering's options. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.model.kube import GatewayRef as GatewayRef  # noqa: PLC0414
from conveyor.model.kube import KubeOptions as KubeOptions  # noqa: PLC0414

Manifest = dict[str, Any]
YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class KubeWarning:
    """Something in the compose file that the manifests do not do as written.

    `path` is where it is written in the compose file (`("services", "web", "user")`);
    empty when the warning is about the rendering, not a line of the file."""

    path: YamlPath
    message: str


@dataclass
class Collected:
    """Manifests and warnings as a renderer produces them."""

    manifests: list[Manifest] = field(default_factory=list)
    warnings: list[KubeWarning] = field(default_factory=list)

    def warn(self, path: YamlPath, message: str) -> None:
        self.warnings.append(KubeWarning(path, message))


def meta(name: str, labels: Mapping[str, str] | None = None) -> Manifest:
    out: Manifest = {"name": name}
    if labels:
        out["labels"] = dict(labels)
    return out


def manifest(api: str, kind: str, metadata: Manifest, **fields: Any) -> Manifest:
    return {"apiVersion": api, "kind": kind, "metadata": metadata, **fields}
