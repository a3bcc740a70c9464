"""prometheus.yml, alertmanager.yml and file_sd targets as Conveyor renders them (pure)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from conveyor.model.endpoint import Endpoint
from conveyor.model.routing import Bind, Frontend, Listener, RouterConfig, ServerEntry
from conveyor.render import prometheus
from conveyor.render.prometheus import (
    PrometheusConfig,
    ProxyLabels,
    ReplicaTarget,
    TargetGroup,
    proxy_labels,
    render_targets,
)

ROUTER = RouterConfig(
    frontends=(
        Frontend(
            service="web",
            port=18100,
            servers=(ServerEntry(name="web-1-1", endpoint=Endpoint(host="127.0.0.1", port=1)),),
        ),
        Frontend(
            service="db",
            port=18101,
            mode="tcp",
            target=5432,
            binds=(Bind(port=5432, namespace="cv-x-db"),),
            listeners=(Listener(port=8008, mode="http"),),
        ),
    ),
    stats_port=18102,
)


def _config(**more: Any) -> PrometheusConfig:
    return PrometheusConfig(
        listen="127.0.0.1:9090", targets_dir="/s/targets", rules_dir="/s/rules", **more
    )


def _relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str]:
    """Prometheus's `replace` action, enough of it to read the rendered rules by."""
    out = dict(labels)
    for rule in rules:
        value = ";".join(out.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule["regex"], value)
        if match:
            template = re.sub(r"\$(\d+)", r"\\\1", rule["replacement"])  # $1 -> \1
            out[rule["target_label"]] = match.expand(template)
    return out


def test_every_proxy_of_a_service_is_named_with_its_labels() -> None:
    labels = {p.proxy: p for p in proxy_labels("shop", ROUTER)}

    assert labels["fe_web"] == ProxyLabels("shop", "fe_web", "web", "external")
    assert labels["in_web"] == ProxyLabels("shop", "in_web", "web", "internal")
    assert labels["be_web"] == ProxyLabels("shop", "be_web", "web")
    assert labels["in_db_8008"] == ProxyLabels("shop", "in_db_8008", "db", "internal", 8008)
    assert labels["be_db_8008"] == ProxyLabels("shop", "be_db_8008", "db", None, 8008)
    assert "stats" not in labels


def test_haproxy_series_get_service_edge_port_and_replica() -> None:
    doc = yaml.safe_load(prometheus.render(_config(proxies=proxy_labels("shop", ROUTER))))
    haproxy = next(j for j in doc["scrape_configs"] if j["job_name"] == "haproxy")
    rules = haproxy["metric_relabel_configs"]

    frontend = _relabel(
        rules,
        {
            "__name__": "haproxy_frontend_http_requests_total",
            "project": "shop",
            "proxy": "in_db_8008",
        },
    )
    assert (frontend["service"], frontend["edge"], frontend["port"]) == ("db", "internal", "8008")
    server = _relabel(
        rules,
        {
            "__name__": "haproxy_server_status",
            "project": "shop",
            "proxy": "be_web",
            "server": "web-1-1",
        },
    )
    assert (server["service"], server["replica"]) == ("web", "web-1-1")
    assert "edge" not in server and "port" not in server
    # another project's proxy of the same name is not this project's service
    other = _relabel(rules, {"__name__": "x", "project": "blog", "proxy": "fe_web"})
    assert "service" not in other


def test_project_names_are_matched_literally() -> None:
    rules = prometheus._proxy_rules([ProxyLabels("my.app", "fe_web", "web", "external")])
    assert _relabel(rules, {"project": "myXapp", "proxy": "fe_web"}).get("service") is None
    assert _relabel(rules, {"project": "my.app", "proxy": "fe_web"})["service"] == "web"


def test_jobs_read_their_targets_files_and_alertmanager_is_optional() -> None:
    doc = yaml.safe_load(prometheus.render(_config()))
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}

    assert set(jobs) == {"haproxy", "replicas", "conveyor", "node", "prometheus"}
    assert jobs["replicas"]["file_sd_configs"][0]["files"] == ["/s/targets/replicas-*.json"]
    assert jobs["node"]["file_sd_configs"][0]["files"] == ["/s/targets/node.json"]
    assert doc["rule_files"] == ["/s/rules/*.yml"]
    assert "alerting" not in doc

    with_am = yaml.safe_load(prometheus.render(_config(alertmanager="127.0.0.1:9093")))
    assert with_am["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]
    assert "alertmanager" in {j["job_name"] for j in with_am["scrape_configs"]}


def test_targets_render_the_same_whatever_the_order() -> None:
    a = TargetGroup(("10.0.0.2:80",), {"replica": "b", "project": "p"})
    b = TargetGroup(("10.0.0.1:80",), {"project": "p", "replica": "a"})

    assert render_targets([a, b]) == render_targets([b, a])
    assert json.loads(render_targets([a, b]))[0] == {
        "targets": ["10.0.0.1:80"],
        "labels": {"project": "p", "replica": "a"},
    }


def test_replica_targets_carry_their_path_and_labels() -> None:
    groups = prometheus.replica_targets(
        "shop", "prod", [ReplicaTarget("web", "web-2-1", "10.0.0.5:8000", "/stats")]
    )

    assert groups == [
        TargetGroup(
            ("10.0.0.5:8000",),
            {
                "project": "shop",
                "environment": "prod",
                "service": "web",
                "replica": "web-2-1",
                "__metrics_path__": "/stats",
            },
        )
    ]
    assert prometheus.targets_file("replicas", "shop") == "replicas-shop.json"
    assert prometheus.targets_file("node") == "node.json"
