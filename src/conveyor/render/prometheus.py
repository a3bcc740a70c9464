"""Render Prometheus's configuration and its file-based discovery targets. Pure: no I/O.

`render(config)` is prometheus.yml: the scrape jobs of docs/metrics.md (HAProxy's exporter,
replicas that declare `x-conveyor.metrics`, Conveyor's own metrics, node exporter, Prometheus and
Alertmanager themselves), each job but the last two reading its targets from JSON files
(`file_sd_configs`) that `render_targets` writes, so replicas come and go without a reload.

HAProxy's exporter labels series with its proxy names (`fe_web`, `in_web_8008`, `be_web`); the
`haproxy` job relabels them into `service`, `edge` and `port` with one rule per proxy, matched on
`project;proxy` (service names may hold `_`, so a proxy name cannot be split by a pattern). A
new service or port therefore changes this file (a reload), a new replica does not.

`VALIDATOR` is `promtool check config`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from conveyor.model.routing import RouterConfig
from conveyor.render.haproxy import backend_name, frontend_name, internal_frontend_name
from conveyor.render.validator import Validator

INSTALL_HINT = "apt-get install prometheus (Debian's package; it brings promtool)"

VALIDATOR = Validator(
    name="promtool",
    argv=("promtool", "check", "config", "{file}"),
    message_pattern=r"FAILED: (?P<message>.*)$",
    install_hint=INSTALL_HINT,
)

# Target files, one per job and project: `<job>-<project>.json` (node exporter: `node.json`).
JOBS_WITH_FILES = ("haproxy", "replicas", "conveyor", "node")

Edge = Literal["external", "internal"]


@dataclass(frozen=True)
class ProxyLabels:
    """What one HAProxy proxy of a project is, as labels on its series."""

    project: str
    proxy: str
    service: str
    edge: Edge | None = None  # frontends only
    port: int | None = None  # a service's further port; None for its main port


@dataclass(frozen=True)
class TargetGroup:
    """One entry of a file_sd JSON file: addresses and the labels they all get."""

    targets: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrometheusConfig:
    """What prometheus.yml says. Addresses are `host:port`; directories absolute."""

    listen: str  # Prometheus itself (scraped as job `prometheus`)
    targets_dir: str
    rules_dir: str
    alertmanager: str | None = None
    proxies: tuple[ProxyLabels, ...] = ()
    scrape_interval: str = "5s"
    evaluation_interval: str = "5s"
    file_refresh: str = "30s"  # a fallback: Prometheus watches the files themselves


def proxy_labels(project: str, config: RouterConfig) -> tuple[ProxyLabels, ...]:
    """Every proxy HAProxy runs for `config` (as render.haproxy names them) with its labels.
    An internal frontend is listed whether or not the port has a namespace bind: a rule for a
    proxy that does not exist matches nothing."""
    out: list[ProxyLabels] = []
    for fe in sorted(config.frontends, key=lambda f: f.service):
        ports: list[int | None] = [None, *(x.port for x in fe.listeners)]
        for port in ports:
            name = fe.service
            out += [
                ProxyLabels(project, frontend_name(name, port), name, "external", port),
                ProxyLabels(project, internal_frontend_name(name, port), name, "internal", port),
                ProxyLabels(project, backend_name(name, port), name, None, port),
            ]
    return tuple(out)


def _match(project: str, proxy: str) -> str:
    return f"{re.escape(project)};{re.escape(proxy)}"


def _proxy_rules(proxies: Iterable[ProxyLabels]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for p in proxies:
        labels: dict[str, str] = {"service": p.service}
        if p.edge is not None:
            labels["edge"] = p.edge
        if p.port is not None:
            labels["port"] = str(p.port)
        for label, value in labels.items():
            rules.append(
                {
                    "source_labels": ["project", "proxy"],
                    "regex": _match(p.project, p.proxy),
                    "target_label": label,
                    "replacement": value,
                }
            )
    # Per-replica series: HAProxy's server name is the replica's id.
    rules.append(
        {
            "source_labels": ["__name__", "server"],
            "regex": "haproxy_server_.+;(.+)",
            "target_label": "replica",
            "replacement": "$1",
        }
    )
    return rules


def _file_job(job: str, config: PrometheusConfig, **more: Any) -> dict[str, Any]:
    name = "node.json" if job == "node" else f"{job}-*.json"
    return {
        "job_name": job,
        "file_sd_configs": [
            {"files": [f"{config.targets_dir}/{name}"], "refresh_interval": config.file_refresh}
        ],
        **more,
    }


def render(config: PrometheusConfig) -> str:
    """prometheus.yml for `config`."""
    doc: dict[str, Any] = {
        "global": {
            "scrape_interval": config.scrape_interval,
            "evaluation_interval": config.evaluation_interval,
        },
        "rule_files": [f"{config.rules_dir}/*.yml"],
    }
    if config.alertmanager is not None:
        doc["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [config.alertmanager]}]}]
        }
    jobs: list[dict[str, Any]] = [
        _file_job("haproxy", config, metric_relabel_configs=_proxy_rules(config.proxies)),
        _file_job("replicas", config),
        _file_job("conveyor", config, honor_labels=True),
        _file_job("node", config),
        {"job_name": "prometheus", "static_configs": [{"targets": [config.listen]}]},
    ]
    if config.alertmanager is not None:
        jobs.append(
            {"job_name": "alertmanager", "static_configs": [{"targets": [config.alertmanager]}]}
        )
    doc["scrape_configs"] = jobs
    header = "# Rendered by Conveyor (conveyor.render.prometheus). The next change rewrites it.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


# ---- targets ------------------------------------------------------------------------------


def targets_file(job: str, project: str | None = None) -> str:
    """The file name of a job's targets for a project (node exporter: one for the host)."""
    if job not in JOBS_WITH_FILES:
        raise ValueError(f"job {job!r} reads no targets file")
    return "node.json" if job == "node" else f"{job}-{project}.json"


def render_targets(groups: Sequence[TargetGroup]) -> str:
    """A file_sd JSON document; sorted, so an unchanged set renders to the same text."""
    ordered = sorted(groups, key=lambda g: (sorted(g.targets), sorted(g.labels.items())))
    items = [
        {"targets": sorted(g.targets), "labels": dict(sorted(g.labels.items()))} for g in ordered
    ]
    return json.dumps(items, indent=2) + "\n"


def project_labels(project: str, environment: str) -> dict[str, str]:
    return {"project": project, "environment": environment}


@dataclass(frozen=True)
class ReplicaTarget:
    """One replica whose service declares `x-conveyor.metrics`."""

    service: str
    replica: str
    address: str  # host:port
    path: str


def haproxy_targets(project: str, environment: str, stats_port: int | None) -> list[TargetGroup]:
    if stats_port is None:
        return []
    return [TargetGroup((f"127.0.0.1:{stats_port}",), project_labels(project, environment))]


def replica_targets(
    project: str, environment: str, replicas: Iterable[ReplicaTarget]
) -> list[TargetGroup]:
    base = project_labels(project, environment)
    return [
        TargetGroup(
            (r.address,),
            {**base, "service": r.service, "replica": r.replica, "__metrics_path__": r.path},
        )
        for r in replicas
    ]


def conveyor_targets(port: int | None, component: str = "agent") -> list[TargetGroup]:
    """Conveyor's own endpoint. No project label on the target: its series carry their own
    (a server's cover several projects), kept as they are (`honor_labels`)."""
    if port is None:
        return []
    return [TargetGroup((f"127.0.0.1:{port}",), {"component": component})]


def node_targets(port: int | None) -> list[TargetGroup]:
    return [] if port is None else [TargetGroup((f"127.0.0.1:{port}",))]
