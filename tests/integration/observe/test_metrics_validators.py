"""The field's validators on what Conveyor renders for metrics: `promtool check config` on
prometheus.yml (with every kind of proxy a project has), `promtool check rules` on every PromQL
expression of the Grafana dashboards; and a rejected file never replaces the one in use
(`amtool check-config` on alertmanager.yml is tests/unit/render/test_alertmanager_routes.py's).
No server runs here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conveyor.errors import MetricsError
from conveyor.host.validate import check
from conveyor.model.endpoint import Endpoint
from conveyor.model.routing import Bind, Frontend, Listener, RouterConfig, ServerEntry
from conveyor.observe.metrics.supervisor import MetricsLayout, MetricsPorts, MetricsStack
from conveyor.render import alertmanager_routes, grafana, prometheus
from conveyor.render.validator import Validator

ROUTER = RouterConfig(
    frontends=(
        Frontend(
            service="web.front",  # a dot: matched literally in the relabelling
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

RULES = Validator(name="promtool rules", argv=("promtool", "check", "rules", "{file}"))


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("promtool", "amtool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing: scripts/install-host.sh installs it")


def _prometheus_yml(tmp_path: Path) -> str:
    config = prometheus.PrometheusConfig(
        listen="127.0.0.1:19100",
        targets_dir=str(tmp_path / "targets"),
        rules_dir=str(tmp_path / "rules"),
        alertmanager="127.0.0.1:19101",
        proxies=prometheus.proxy_labels("my-shop", ROUTER)
        + prometheus.proxy_labels("blog", RouterConfig(frontends=(ROUTER.frontends[0],))),
    )
    return prometheus.render(config)


def test_promtool_accepts_prometheus_yml(tmp_path: Path) -> None:
    file = tmp_path / "prometheus.yml"
    file.write_text(_prometheus_yml(tmp_path))

    verdict = check(prometheus.VALIDATOR, file)

    assert verdict.ok, verdict.output


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    exprs = []
    for f in grafana.files("my-shop", "http://127.0.0.1:19100", str(tmp_path)):
        if f.path.endswith(".json"):
            doc = json.loads(f.text)
            exprs += [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
            exprs += [a["expr"] for a in doc["annotations"]["list"]]
    # Grafana's $__rate_interval is not PromQL: a window stands in for it
    rules = [
        {"record": f"conveyor:dashboard_{i}", "expr": e.replace("$__rate_interval", "5m")}
        for i, e in enumerate(exprs)
    ]
    file = tmp_path / "dashboards.rules.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))

    verdict = check(RULES, file)

    assert verdict.ok, verdict.output
    assert len(rules) >= 15


def test_a_rejected_configuration_leaves_the_one_in_use(tmp_path: Path) -> None:
    stack = MetricsStack(MetricsLayout(tmp_path / "metrics"), MetricsPorts(1, 2, 3, 4))
    good_am = alertmanager_routes.render(None)
    stack.configure(_prometheus_yml(tmp_path), good_am)
    in_use = stack.layout.prometheus_config.read_text()
    broken = in_use.replace("scrape_interval: 5s", "scrape_interval: five seconds")

    with pytest.raises(MetricsError, match="promtool rejected"):
        stack.configure(broken, good_am)

    assert stack.layout.prometheus_config.read_text() == in_use
    kept = list(stack.layout.prometheus_dir.glob("prometheus.yml.*.new"))
    assert [k.read_text() for k in kept] == [broken]  # kept for its line numbers
