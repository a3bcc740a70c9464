"""What app.metrics puts in the metrics files for projects, and its settings (pure parts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conveyor.app import metrics
from conveyor.app.metrics import ProjectFacts
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import SettingError
from conveyor.model.endpoint import Endpoint
from conveyor.model.release import Observed, ObservedReplica, Release, ServiceRelease
from conveyor.model.stack import MetricsEndpoint, Routing, Service, Stack
from conveyor.observe.metrics.supervisor import MetricsLayout, MetricsPorts


def _release(project: str, metrics_endpoint: MetricsEndpoint | None) -> Release:
    svc = Service(
        name="web", image="web", replicas=2, routing=Routing(port=8000), metrics=metrics_endpoint
    )
    worker = Service(name="worker", image="worker")
    return Release(
        number=1,
        project=project,
        services={
            "web": ServiceRelease(service=svc, image_id="sha256:1", image_ref="web"),
            "worker": ServiceRelease(service=worker, image_id="sha256:2", image_ref="worker"),
        },
        stack=Stack(
            project=project, file="/x/compose.yaml", services={"web": svc, "worker": worker}
        ),
    )


def _replica(name: str, host: str, port: int, running: bool = True) -> ObservedReplica:
    return ObservedReplica(
        replica=name,
        service="web",
        container_id="c" + name,
        spec_hash="h",
        release=1,
        endpoint=Endpoint(host=host, port=port),
        running=running,
    )


OBSERVED = Observed(
    replicas=(
        _replica("web-1-1", "10.0.0.5", 8000),
        _replica("web-1-2", "10.0.0.6", 8000),
        _replica("web-1-3", "10.0.0.7", 8000, running=False),
    )
)


def _facts(project: str, endpoint: MetricsEndpoint | None) -> ProjectFacts:
    return ProjectFacts(
        project=project,
        environment="prod",
        release=_release(project, endpoint),
        frontend_ports={"web": 18100},
        stats_port=18101,
        observed=OBSERVED,
    )


def test_running_replicas_of_a_declaring_service_are_targets() -> None:
    facts = _facts("shop", MetricsEndpoint(path="/stats", port=9100))

    files = metrics.target_files(facts)

    groups = json.loads(files["replicas-shop.json"])
    assert [(g["targets"], g["labels"]["replica"]) for g in groups] == [
        (["10.0.0.5:9100"], "web-1-1"),
        (["10.0.0.6:9100"], "web-1-2"),
    ]
    assert {g["labels"]["__metrics_path__"] for g in groups} == {"/stats"}
    assert json.loads(files["haproxy-shop.json"]) == [
        {"targets": ["127.0.0.1:18101"], "labels": {"environment": "prod", "project": "shop"}}
    ]


def test_a_service_that_declares_nothing_is_not_scraped() -> None:
    files = metrics.target_files(_facts("shop", None))

    assert json.loads(files["replicas-shop.json"]) == []


def test_one_prometheus_relabels_the_proxies_of_every_project(tmp_path: Path) -> None:
    lay = MetricsLayout(tmp_path)
    prom, _am = metrics.config_files(
        [_facts("shop", None), _facts("blog", None)], MetricsPorts(1, 2, 3, 4), lay
    )

    doc = yaml.safe_load(prom)
    haproxy = next(j for j in doc["scrape_configs"] if j["job_name"] == "haproxy")
    matched = {r["regex"] for r in haproxy["metric_relabel_configs"]}
    assert {"shop;fe_web", "blog;fe_web", "shop;be_web"} <= matched
    assert not any("worker" in m for m in matched)  # not routed: no proxy
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:2"]


def test_conveyor_and_node_targets_of_the_host() -> None:
    files = metrics.host_target_files(MetricsPorts(1, 2, 3, 4), "shop", "agent")

    assert json.loads(files["conveyor-shop.json"]) == [
        {"targets": ["127.0.0.1:4"], "labels": {"component": "agent"}}
    ]
    assert json.loads(files["node.json"]) == [{"targets": ["127.0.0.1:3"], "labels": {}}]
    without = metrics.host_target_files(MetricsPorts(1, 2, 3, 4), "shop", None)
    assert json.loads(without["conveyor-shop.json"]) == []


def test_replica_counts_per_service() -> None:
    counts = metrics.replica_counts(_facts("shop", None))

    web = next(c for c in counts if c.service == "web")
    assert (web.desired, web.running) == (2, 2)


def test_ports_are_chosen_once_and_kept(tmp_path: Path) -> None:
    lay = MetricsLayout(tmp_path)

    first = metrics.ports(lay, {})
    again = metrics.ports(lay, {})

    assert first == again
    assert len({first.prometheus, first.alertmanager, first.node_exporter, first.conveyor}) == 4
    assert all(19100 <= p <= 19999 for p in vars(first).values())


def test_a_port_setting_wins_and_is_checked(tmp_path: Path) -> None:
    lay = MetricsLayout(tmp_path)

    assert metrics.ports(lay, {"CONVEYOR_PROMETHEUS_PORT": "19555"}).prometheus == 19555
    with pytest.raises(SettingError, match="CONVEYOR_ALERTMANAGER_PORT"):
        metrics.ports(lay, {"CONVEYOR_ALERTMANAGER_PORT": "ninety"})


def test_metrics_are_off_by_flag_or_setting(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path / "compose.yaml", "shop")

    assert metrics.enabled(paths, {})
    assert not metrics.enabled(paths, {"CONVEYOR_METRICS": "off"})
    metrics.set_enabled(paths, False)
    assert not metrics.enabled(paths, {})
    metrics.set_enabled(paths, True)
    assert metrics.enabled(paths, {})
