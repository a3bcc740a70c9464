"""Every rendered part passes `kubectl kustomize` (run through host.validate, as the CLI runs
it), and every object it builds passes kubernetes-validate's strict schemas for Kubernetes
1.30, 1.31 and 1.32 (offline). HTTPRoutes are Gateway API CRDs, which kubernetes-validate
does not carry: they are checked against the documented v1 fields instead."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conveyor.app.render import validate_rendering, write_rendering
from conveyor.host.command import tool_path
from conveyor.model.kube import KubeOptions
from tests.unit.render.kubernetes.conftest import CASES, render_case

VERSIONS = ("1.30.0", "1.31.0", "1.32.0")
needs_kubectl = pytest.mark.skipif(tool_path("kubectl") is None, reason="kubectl not installed")

# Gateway API v1 HTTPRoute: the fields the renderer may write (gateway-api.sigs.k8s.io, v1.x).
_ROUTE_FIELDS = {
    "spec": {"parentRefs", "hostnames", "rules"},
    "parentRef": {"group", "kind", "namespace", "name", "sectionName", "port"},
    "rule": {"name", "matches", "filters", "backendRefs", "timeouts"},
    "match": {"path", "headers", "queryParams", "method"},
    "backendRef": {"group", "kind", "name", "namespace", "port", "weight", "filters"},
}


def _built(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize` makes of one part."""
    result = subprocess.run(
        [tool_path("kubectl") or "kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _check_route(route: dict[str, Any]) -> None:
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = route["spec"]
    assert set(spec) <= _ROUTE_FIELDS["spec"]
    for parent in spec["parentRefs"]:
        assert set(parent) <= _ROUTE_FIELDS["parentRef"]
        assert isinstance(parent["name"], str)
        assert isinstance(parent.get("port", 1), int)
    for rule in spec["rules"]:
        assert set(rule) <= _ROUTE_FIELDS["rule"]
        for match in rule["matches"]:
            assert set(match) <= _ROUTE_FIELDS["match"]
            assert match["path"]["type"] in ("Exact", "PathPrefix", "RegularExpression")
        for ref in rule["backendRefs"]:
            assert set(ref) <= _ROUTE_FIELDS["backendRef"]
            assert 1 <= ref["port"] <= 65535


# Ingresses only where something is published over HTTP (elsewhere both renderings agree).
_RUNS = [(case, "gateway") for case in sorted(CASES)] + [
    ("corpus-web-db", "ingress"),
    ("example-shop", "ingress"),
]


@needs_kubectl
@pytest.mark.parametrize(("case", "traffic"), _RUNS)
def test_every_part_builds_and_every_object_is_valid(
    case: str, traffic: str, tmp_path: Path
) -> None:
    options = KubeOptions(traffic="ingress" if traffic == "ingress" else "gateway")
    rendering = render_case(CASES[case], options).rendering
    write_rendering(rendering, tmp_path)
    verdicts = validate_rendering(tmp_path, rendering)
    assert [v.file.relative_to(tmp_path).as_posix() for v in verdicts] == rendering.directories()
    assert all(v.ok for v in verdicts), [v.messages for v in verdicts]
    kinds: set[str] = set()
    for directory in rendering.directories():
        for obj in _built(tmp_path / directory):
            kinds.add(obj["kind"])
            if obj["kind"] == "HTTPRoute":
                _check_route(obj)
                continue
            for version in VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)
    assert "NetworkPolicy" in kinds


def test_a_wrong_object_is_refused_by_the_schemas() -> None:
    """The validator used above does reject what the cluster would (guards the test)."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"image": "x"}]}}},
        "replicas": 2,
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.32.0", strict=True)


@needs_kubectl
def test_kustomize_rejections_come_back_as_failed_verdicts(tmp_path: Path) -> None:
    rendering = render_case(CASES["corpus-autoscale-rps"]).rendering
    write_rendering(rendering, tmp_path)
    (tmp_path / "base" / "kustomization.yaml").write_text(
        "resources: [missing.yaml]\n", encoding="utf-8"
    )
    verdicts = validate_rendering(tmp_path, rendering)
    assert not verdicts[0].ok
    assert any("missing.yaml" in m for m in verdicts[0].messages)
