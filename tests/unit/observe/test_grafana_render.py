"""Grafana dashboards and provisioning files for a project, read back through the SDK's models
(generated from Grafana's schemas). Not loaded into a running Grafana: none runs here."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from conveyor.render import grafana

FILES = {f.path: f.text for f in grafana.files("shop", "http://127.0.0.1:19100", "/srv/g")}
DASHBOARDS = ["dashboards/shop/red.json", "dashboards/shop/use.json"]


def _targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for p in doc["panels"] for t in p.get("targets", [])]


@pytest.mark.parametrize("path", DASHBOARDS)
def test_dashboard_reads_back_as_a_grafana_dashboard(path: str) -> None:
    register_default_plugins()
    doc = json.loads(FILES[path])

    model = Dashboard.from_json(doc)

    assert model.uid == doc["uid"]
    assert len(model.uid) <= 40
    assert model.panels is not None and len(model.panels) == len(doc["panels"])
    ids = [p["id"] for p in doc["panels"]]
    assert len(set(ids)) == len(ids)
    assert doc["schemaVersion"] >= 39


@pytest.mark.parametrize("path", DASHBOARDS)
def test_every_query_asks_the_provisioned_prometheus(path: str) -> None:
    datasources = yaml.safe_load(FILES["provisioning/datasources/conveyor-shop.yaml"])
    (source,) = datasources["datasources"]
    doc = json.loads(FILES[path])

    targets = _targets(doc)
    assert targets
    for t in targets:
        assert t["datasource"] == {"type": "prometheus", "uid": source["uid"]}
        assert t["refId"]
    assert source["url"] == "http://127.0.0.1:19100"


def test_red_is_per_service_of_this_project_and_marks_rollouts() -> None:
    doc = json.loads(FILES["dashboards/shop/red.json"])
    exprs = [t["expr"] for t in _targets(doc)]

    assert all('project="shop"' in e for e in exprs)
    assert any("haproxy_backend_http_requests_total" in e for e in exprs)
    assert any('code="5xx"' in e for e in exprs)
    assert any("by (service, edge)" in e for e in exprs)
    (rollouts,) = doc["annotations"]["list"]
    assert "conveyor_rollouts_total" in rollouts["expr"]
    assert 'project="shop"' in rollouts["expr"]


def test_use_covers_cpu_memory_disk_and_network() -> None:
    exprs = " ".join(t["expr"] for t in _targets(json.loads(FILES["dashboards/shop/use.json"])))

    for series in (
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_network_receive_bytes_total",
    ):
        assert series in exprs


def test_provider_points_at_the_dashboards_directory() -> None:
    providers = yaml.safe_load(FILES["provisioning/dashboards/conveyor-shop.yaml"])

    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/srv/g/dashboards/shop"


def test_two_projects_do_not_share_a_datasource_or_uid() -> None:
    other = {f.path: f.text for f in grafana.files("blog", "http://127.0.0.1:19200", "/srv/g")}

    assert not set(other) & set(FILES) - {"provisioning"}
    assert grafana.datasource_uid("blog") != grafana.datasource_uid("shop")
    assert (
        json.loads(other["dashboards/blog/red.json"])["uid"]
        != json.loads(FILES["dashboards/shop/red.json"])["uid"]
    )
