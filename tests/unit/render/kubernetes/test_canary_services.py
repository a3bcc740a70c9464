"""A service Flagger canaries: its Service (and, with the Gateway API, its HTTPRoute) is left
to Flagger, which points them at the primary; the rendered Canary refers to the service's
autoscaler, and only Deployments get one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conveyor.app.flux import flux_inputs
from conveyor.model.kube import KubeOptions
from conveyor.render import flagger
from tests.unit.render.kubernetes.conftest import render_case

PROJECT = Path(__file__).parents[1] / "flux_project"  # web and api ask for a canary


def _objects(options: KubeOptions | None = None) -> list[dict[str, Any]]:
    rendering = render_case(PROJECT, options)
    found: list[dict[str, Any]] = []
    for path, text in rendering.rendering.files.items():
        if path.startswith("base/") and path.endswith(".yaml") and "kustomization" not in path:
            found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found


def _names(objects: list[dict[str, Any]], kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] == kind}


def test_flagger_owns_a_canaried_services_service_and_route() -> None:
    objects = _objects()
    services = _names(objects, "Service")
    assert "web" not in services and "api" not in services  # Flagger makes them
    assert "worker" in services  # the others keep theirs
    assert "web" not in _names(objects, "HTTPRoute")
    assert {"web", "api"} <= _names(objects, "Deployment")


def test_with_ingresses_the_ingress_stays() -> None:
    objects = _objects(KubeOptions(traffic="ingress"))
    assert "web" in _names(objects, "Ingress")
    assert "web" not in _names(objects, "Service")


def test_a_canary_scales_with_the_services_autoscaler_and_only_deployments_get_one() -> None:
    env = flux_inputs("https://git.example.com/deploy.git", [], Path("conveyor.yaml"), {}, PROJECT)
    env = env.environments[0]
    stack = env.stack
    web = stack.services["web"].model_copy(update={"autoscale": _autoscale()})
    canary = flagger.canary(env, web)
    assert canary is not None
    assert canary["spec"]["autoscalerRef"] == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "name": "web",
    }
    assert "autoscalerRef" not in (flagger.canary(env, stack.services["api"]) or {})["spec"]
    # a canary on a service with named volumes (a StatefulSet) is not rendered
    db = stack.services["db"].model_copy(update={"canary": stack.services["web"].canary})
    assert flagger.canary(env, db) is None


def _autoscale() -> Any:
    from conveyor.model.autoscale import Autoscale

    return Autoscale(min=2, max=5, cpu=70)
