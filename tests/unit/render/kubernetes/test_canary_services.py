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


# --- the selectors still match Flagger's primary pods ------------------------------------------

CANARY_CASE = Path(__file__).parent / "corpus" / "canary"
SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")  # Flagger's default -selector-labels


def _primary(deployment: dict[str, Any]) -> dict[str, Any]:
    """The `<name>-primary` Deployment Flagger makes of a canaried one, as its FAQ documents
    ("Label selectors"): the selector label's value becomes `<name>-primary` in the pods'
    labels, and so does the first value of a topology spread (or anti-affinity) match
    expression whose key is a selector label and whose value is the Deployment's name."""
    name = deployment["metadata"]["name"]
    primary = yaml.safe_load(yaml.safe_dump(deployment))
    primary["metadata"]["name"] = f"{name}-primary"
    pod = primary["spec"]["template"]
    for key in SELECTOR_LABELS:
        if pod["metadata"]["labels"].get(key) == name:
            pod["metadata"]["labels"][key] = f"{name}-primary"
    for constraint in pod["spec"].get("topologySpreadConstraints", []):
        for expression in constraint["labelSelector"].get("matchExpressions", []):
            if expression["key"] in SELECTOR_LABELS and expression["values"][0] == name:
                expression["values"][0] = f"{name}-primary"
    return primary


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and In/NotIn/Exists expressions)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {
            "In": present and value in e.get("values", []),
            "NotIn": not present or value not in e.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return False
    return True


def test_budgets_policies_and_spread_still_select_flaggers_primary_pods() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in _objects_of(CANARY_CASE)}
    web = objects[("Deployment", "web")]
    primary = _primary(web)
    primary_pods = primary["spec"]["template"]["metadata"]["labels"]
    canary_pods = web["spec"]["template"]["metadata"]["labels"]
    worker_pods = objects[("Deployment", "worker")]["spec"]["template"]["metadata"]["labels"]
    assert primary_pods["app.kubernetes.io/name"] == "web-primary"

    budget = objects[("PodDisruptionBudget", "web")]["spec"]["selector"]
    assert _selects(budget, primary_pods) and _selects(budget, canary_pods)
    assert not _selects(budget, worker_pods)
    published = objects[("NetworkPolicy", "web-published")]["spec"]["podSelector"]
    assert _selects(published, primary_pods) and not _selects(published, worker_pods)
    network = objects[("NetworkPolicy", "network-default")]["spec"]
    assert _selects(network["podSelector"], primary_pods)
    assert _selects(network["ingress"][0]["from"][0]["podSelector"], primary_pods)
    # The primary spreads its own pods, not the canary's.
    for constraint in primary["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert _selects(constraint["labelSelector"], primary_pods)
        assert not _selects(constraint["labelSelector"], canary_pods)
    # A service that is not canaried keeps plain matchLabels (Flagger plays no part).
    assert objects[("PodDisruptionBudget", "worker")]["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "worker", "app.kubernetes.io/part-of": "shop"}
    }


def _objects_of(directory: Path) -> list[dict[str, Any]]:
    rendering = render_case(directory)
    found: list[dict[str, Any]] = []
    for path, text in rendering.rendering.files.items():
        if path.startswith("base/") and path.endswith(".yaml") and "kustomization" not in path:
            found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found
