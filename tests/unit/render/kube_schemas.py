"""The schemas the rendered Kubernetes objects are checked against, by apiVersion and kind:

- Flux (source v1, kustomize v1, notification v1beta3, image v1beta2) and the
  prometheus-operator (monitoring.coreos.com/v1): the pydantic models cloudcoil generates from
  the projects' published CRDs (`cloudcoil-models-fluxcd`, `cloudcoil-models-prometheus-
  operator` on PyPI). The models ignore unknown fields, so an object must also come back
  unchanged from the model (dumped by alias, unset fields left out): a field the CRD does not
  have, or a value the model had to convert, is a problem.
- Flagger (flagger.app/v1beta1): schemas/flagger-v1beta1.json, written from Flagger's
  documented fields (no package here ships its CRD).
- Kubernetes itself: kubernetes-validate's offline schemas, strict (unknown fields refused),
  for each version of KUBERNETES_VERSIONS.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
from cloudcoil.models.fluxcd.image import v1beta2 as image
from cloudcoil.models.fluxcd.kustomize import v1 as kustomize
from cloudcoil.models.fluxcd.notification import v1beta3 as notification
from cloudcoil.models.fluxcd.source import v1 as source
from cloudcoil.models.prometheus_operator import v1 as monitoring
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from pydantic import BaseModel, ValidationError

KUBERNETES_VERSIONS = ("1.30.0", "1.31.0", "1.32.0")

MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): source.GitRepository,
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): kustomize.Kustomization,
    ("notification.toolkit.fluxcd.io/v1beta3", "Provider"): notification.Provider,
    ("notification.toolkit.fluxcd.io/v1beta3", "Alert"): notification.Alert,
    ("image.toolkit.fluxcd.io/v1beta2", "ImageRepository"): image.ImageRepository,
    ("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy"): image.ImagePolicy,
    ("image.toolkit.fluxcd.io/v1beta2", "ImageUpdateAutomation"): image.ImageUpdateAutomation,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PodMonitor"): monitoring.PodMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule,
}
FLAGGER = "flagger.app/v1beta1"
CORE_GROUPS = ("v1", "apps/v1", "rbac.authorization.k8s.io/v1")


@functools.cache
def _flagger() -> Any:
    schema = json.loads((Path(__file__).parent / "schemas/flagger-v1beta1.json").read_text())
    return validator_for(schema)(schema)


def _differences(given: Any, back: Any, path: str = "") -> list[str]:
    if isinstance(given, dict) and isinstance(back, dict):
        out = [f"{path}.{k}: not a field of the CRD" for k in given if k not in back]
        out += [
            p for k in given if k in back for p in _differences(given[k], back[k], f"{path}.{k}")
        ]
        return out
    if isinstance(given, list) and isinstance(back, list) and len(given) == len(back):
        return [
            p
            for i, (g, b) in enumerate(zip(given, back, strict=True))
            for p in _differences(g, b, f"{path}[{i}]")
        ]
    return [] if given == back else [f"{path}: {given!r} read as {back!r}"]


def problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with one object, by the schema of its kind ([] when it passes); an
    object of a kind no schema covers is a problem too."""
    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    model = MODELS.get((api, kind))
    if model is not None:
        try:
            parsed = model.model_validate(obj)
        except ValidationError as e:
            return [str(e)]
        back = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
        return _differences(obj, back)
    if api == FLAGGER:
        return [
            f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in _flagger().iter_errors(obj)
        ]
    if api in CORE_GROUPS:
        out = []
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                out.append(f"Kubernetes {version}: {e.message} at {list(e.path)}")
        return out
    return [f"no schema for {api} {kind}"]
