"""Observability on Kubernetes (issue 13, item 5): what Prometheus (through the
prometheus-operator), Fluent Bit and Grafana need to watch a project's environments the way
Conveyor watches them on a Docker host. Pure: no I/O.

- A ServiceMonitor per service with `x-conveyor.metrics` (a PodMonitor for a service without
  an HTTP port, or whose pods Flagger relabels: a canary's primary pods are named
  `<svc>-primary`). Their relabelings give every series the labels the rules select on:
  `project` (the namespace), `environment`, `service`, and `job="replicas"`.
- PrometheusRules holding exactly the groups `render.prometheus_rules` writes for a Docker
  host: the shared RED and host rules once for the cluster (with every environment's own
  alert thresholds), and one SLO rule per environment with objectives.
- Fluent Bit: a DaemonSet tailing every container's log, the `kubernetes` filter adding pod
  metadata, the `es` output to Elasticsearch (conveyor.yaml's `logs.ship` destination).
- Grafana: the RED and USE dashboards of each environment as ConfigMaps labelled
  `grafana_dashboard: "1"` (the Grafana sidecar loads them), and the datasource they name.

The RED rules read HAProxy's exporter (`job="haproxy"`) for rates and errors: on a cluster
that needs the ingress's exporter relabelled the same way; the latency and SLO rules read the
replicas' own histograms, which the monitors here provide (docs/flux.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from conveyor.model.log_shipping import ElasticsearchDestination, LogShipping
from conveyor.model.stack import Service
from conveyor.render import grafana, prometheus_rules
from conveyor.render.kube_meta import (
    MONITORING_LABELS,
    NAME_LABEL,
    KubeEnvironment,
    http_port,
    metadata,
)

MONITORING_API = "monitoring.coreos.com/v1"
MONITORING_NAMESPACE = "monitoring"  # the cluster-wide rules
LOGGING_NAMESPACE = "logging"
SCRAPE_INTERVAL = "15s"
FLUENT_BIT_IMAGE = "cr.fluentbit.io/fluent/fluent-bit:3.2.2"
DEFAULT_ELASTICSEARCH = "http://elasticsearch.logging.svc:9200"
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
DEFAULT_SETTINGS = prometheus_rules.AlertSettings()
ES_SECRET = "fluent-bit-elasticsearch"  # noqa: S105 (a name); holds `password` when the destination has a user


# ---- metrics ------------------------------------------------------------------------------


def _relabelings(env: KubeEnvironment, service: str) -> list[dict[str, Any]]:
    """The labels the rules select on (render.prometheus_rules: SERVICE, job="replicas")."""
    fixed = {
        "job": "replicas",
        "project": env.namespace,
        "environment": env.name,
        "service": service,
    }
    return [
        {"action": "replace", "targetLabel": label, "replacement": value}
        for label, value in fixed.items()
    ]


def monitor(env: KubeEnvironment, service: Service) -> dict[str, Any] | None:
    """The ServiceMonitor (or PodMonitor) scraping one service's replicas, None when the
    service declares no metrics endpoint. The port is the pods' container port (the metrics
    port, else the HTTP port): the workload must declare it in `ports:`."""
    if service.metrics is None:
        return None
    main = http_port(service)  # None: no Service in front of the pods
    port = service.metrics.port or main
    endpoint: dict[str, Any] = {
        "path": service.metrics.path,
        "interval": SCRAPE_INTERVAL,
        "relabelings": _relabelings(env, service.name),
    }
    meta = metadata(service.name, env.namespace, MONITORING_LABELS)
    if main is not None and port is not None and service.canary is None:
        # The Service named as the compose service (the workload renderer's) selects the pods.
        return {
            "apiVersion": MONITORING_API,
            "kind": "ServiceMonitor",
            "metadata": meta,
            "spec": {
                "selector": {"matchLabels": {NAME_LABEL: service.name}},
                "endpoints": [{"targetPort": port, **endpoint}],
            },
        }
    # Flagger names the primary's pods `<svc>-primary`: select both.
    names = [service.name, f"{service.name}-primary"] if service.canary else [service.name]
    pod_endpoint = {"portNumber": port, **endpoint} if port is not None else endpoint
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": meta,
        "spec": {
            "selector": {
                "matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": names}]
            },
            "podMetricsEndpoints": [pod_endpoint],
        },
    }


def monitors(env: KubeEnvironment) -> list[dict[str, Any]]:
    found = (monitor(env, s) for _, s in sorted(env.stack.services.items()))
    return [m for m in found if m is not None]


def prometheus_rule(name: str, namespace: str, rule_file: str) -> dict[str, Any]:
    """A PrometheusRule holding the groups of one rendered rule file, unchanged."""
    groups = yaml.safe_load(rule_file)["groups"]
    return {
        "apiVersion": MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": metadata(name, namespace, MONITORING_LABELS),
        "spec": {"groups": groups},
    }


def shared_rules(
    envs: Sequence[KubeEnvironment],
    settings: prometheus_rules.AlertSettings = DEFAULT_SETTINGS,
) -> list[dict[str, Any]]:
    """The RED rules (with every environment's services that have thresholds of their own)
    and the host rules, once for the cluster: they aggregate by label, so one copy serves
    every namespace, and two copies would record every series twice."""
    own = [
        target
        for env in envs
        for target in prometheus_rules.alert_targets(
            env.namespace, env.name, {n: s.alerts for n, s in env.stack.services.items()}
        )
    ]
    return [
        prometheus_rule(
            "conveyor-red", MONITORING_NAMESPACE, prometheus_rules.red_rules(settings, own)
        ),
        prometheus_rule("conveyor-host", MONITORING_NAMESPACE, prometheus_rules.host_rules()),
    ]


def slo_rule(env: KubeEnvironment) -> dict[str, Any] | None:
    """The environment's burn-rate alerts, None when no service has objectives."""
    targets = prometheus_rules.slo_targets(
        env.namespace, env.name, {n: s.slo for n, s in env.stack.services.items()}
    )
    if not targets:
        return None
    return prometheus_rule("conveyor-slo", env.namespace, prometheus_rules.slo_rules(targets))


def rule_groups(rule: dict[str, Any]) -> str:
    """A PrometheusRule's groups as a Prometheus rule file (what promtool checks)."""
    return yaml.safe_dump(
        {"groups": rule["spec"]["groups"]}, sort_keys=False, default_flow_style=False, width=10_000
    )


# ---- logs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EsOutput:
    """Where Fluent Bit ships: Elasticsearch's address and index naming."""

    host: str
    port: int
    tls: bool
    index: str  # a fixed index, or the prefix of a daily one
    daily: bool  # `<index>-YYYY.MM.DD` (Logstash_Format)
    user: str | None = None  # the password comes from the Secret ES_SECRET (`password`)
    path: str = ""  # Elasticsearch behind a path prefix (`https://host/es`)


_DAILY = re.compile(r"(?P<prefix>[^%]+)-%Y\.%m\.%d")


def es_output(logs: LogShipping, url: str | None = None) -> EsOutput:
    """The first Elasticsearch destination of conveyor.yaml's `logs.ship` (or `url` over it,
    or the in-cluster default) as Fluent Bit's output. The index pattern carries over when
    it is Conveyor's daily `<prefix>-%Y.%m.%d`, else as a fixed name (strftime parts
    dropped: Fluent Bit's es output formats only the Logstash form). An `api_key_env`
    destination is not carried over: only a user and password are (docs/flux.md)."""
    dest = next((d for d in logs.ship if isinstance(d, ElasticsearchDestination)), None)
    parts = urlsplit(url or (dest.url if dest else DEFAULT_ELASTICSEARCH))
    tls = parts.scheme == "https"
    index = dest.index if dest else "conveyor-%Y.%m.%d"
    daily = _DAILY.fullmatch(index)
    return EsOutput(
        host=parts.hostname or "elasticsearch",
        port=parts.port or (443 if tls else 9200),
        tls=tls,
        index=daily["prefix"] if daily else re.sub(r"%.", "", index).strip("-.") or "conveyor",
        daily=daily is not None,
        path=parts.path.rstrip("/"),
        user=dest.username if dest else None,
    )


def _section(name: str, entries: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in entries)
    lines = [f"[{name}]"] + [f"    {k.ljust(width)} {v}" for k, v in entries]
    return "\n".join(lines) + "\n"


def fluent_bit_config(es: EsOutput) -> str:
    """fluent-bit.conf: tail the kubelet's container logs (CRI format), add pod metadata,
    ship to Elasticsearch."""
    output: list[tuple[str, str]] = [
        ("Name", "es"),
        ("Match", "kube.*"),
        ("Host", es.host),
        ("Port", str(es.port)),
        ("tls", "On" if es.tls else "Off"),
        ("tls.verify", "On"),
        ("Suppress_Type_Name", "On"),  # Elasticsearch 8 refuses mapping types
        ("Replace_Dots", "On"),  # label keys such as app.kubernetes.io/name
        ("Trace_Error", "On"),
        ("Retry_Limit", "False"),  # keep retrying: the buffer holds what is not yet shipped
    ]
    if es.daily:
        output += [("Logstash_Format", "On"), ("Logstash_Prefix", es.index)]
        output.append(("Logstash_DateFormat", "%Y.%m.%d"))
    else:
        output.append(("Index", es.index))
    if es.path:
        output.append(("Path", es.path))
    if es.user:
        output += [("HTTP_User", es.user), ("HTTP_Passwd", "${ES_PASSWORD}")]
    return "\n".join(
        [
            _section(
                "SERVICE",
                [
                    ("Flush", "5"),
                    ("Log_Level", "info"),
                    ("Parsers_File", "/fluent-bit/etc/parsers.conf"),
                    ("HTTP_Server", "On"),  # /api/v1/health for the probes, /api/v1/metrics
                    ("HTTP_Listen", "0.0.0.0"),  # noqa: S104 (the pod's own address: probes)
                    ("HTTP_Port", "2020"),
                    ("Health_Check", "On"),
                    ("storage.path", "/var/fluent-bit/state/buffer"),
                ],
            ),
            _section(
                "INPUT",
                [
                    ("Name", "tail"),
                    ("Tag", "kube.*"),
                    ("Path", "/var/log/containers/*.log"),
                    ("multiline.parser", "cri, docker"),
                    ("DB", "/var/fluent-bit/state/tail.db"),  # offsets survive a restart
                    ("storage.type", "filesystem"),
                    ("Mem_Buf_Limit", "50MB"),
                    ("Skip_Long_Lines", "On"),
                    ("Refresh_Interval", "10"),
                ],
            ),
            _section(
                "FILTER",
                [
                    ("Name", "kubernetes"),
                    ("Match", "kube.*"),
                    ("Kube_Tag_Prefix", "kube.var.log.containers."),
                    ("Merge_Log", "On"),  # JSON lines become fields
                    ("Keep_Log", "Off"),
                    ("K8S-Logging.Parser", "On"),
                    ("K8S-Logging.Exclude", "On"),
                    ("Labels", "On"),
                    ("Annotations", "Off"),
                ],
            ),
            _section("OUTPUT", output),
        ]
    )


def fluent_bit(es: EsOutput) -> list[dict[str, Any]]:
    """Fluent Bit in namespace `logging`: its account, read access to pods and namespaces
    (the kubernetes filter asks the API server), its configuration and the DaemonSet."""
    name = "fluent-bit"
    labels = {NAME_LABEL: name}
    env: list[dict[str, Any]] = []
    if es.user:
        env.append(
            {
                "name": "ES_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": ES_SECRET, "key": "password"}},
            }
        )
    container: dict[str, Any] = {
        "name": name,
        "image": FLUENT_BIT_IMAGE,
        "ports": [{"name": "http", "containerPort": 2020}],
        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
        "readinessProbe": {"httpGet": {"path": "/api/v1/health", "port": "http"}},
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": "/fluent-bit/etc/fluent-bit.conf",
                "subPath": "fluent-bit.conf",
            },
            {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
            {"name": "state", "mountPath": "/var/fluent-bit/state"},
        ],
    }
    if env:
        container["env"] = env
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(LOGGING_NAMESPACE)},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(name, LOGGING_NAMESPACE, labels),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata(name, labels=labels),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["namespaces", "pods"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(name, labels=labels),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": LOGGING_NAMESPACE}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(name, LOGGING_NAMESPACE, labels),
            "data": {"fluent-bit.conf": fluent_bit_config(es)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": metadata(name, LOGGING_NAMESPACE, labels),
            "spec": {
                "selector": {"matchLabels": labels},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        # Every node's logs, control-plane nodes' included.
                        "tolerations": [{"operator": "Exists"}],
                        "priorityClassName": "system-node-critical",
                        "containers": [container],
                        "volumes": [
                            {"name": "config", "configMap": {"name": name}},
                            {"name": "varlog", "hostPath": {"path": "/var/log"}},
                            {
                                "name": "state",
                                "hostPath": {
                                    "path": "/var/lib/fluent-bit",
                                    "type": "DirectoryOrCreate",
                                },
                            },
                        ],
                    },
                },
            },
        },
    ]


# ---- dashboards ---------------------------------------------------------------------------


def dashboards(env: KubeEnvironment) -> list[dict[str, Any]]:
    """The environment's RED and USE dashboards (render.grafana's, unchanged) as ConfigMaps
    the Grafana sidecar loads (label `grafana_dashboard`), in the Conveyor folder."""
    out = []
    for kind, dashboard in (
        ("red", grafana.red_dashboard(env.namespace)),
        ("use", grafana.use_dashboard(env.namespace)),
    ):
        meta = metadata(f"conveyor-dashboard-{kind}", env.namespace, {"grafana_dashboard": "1"})
        meta["annotations"] = {"grafana_folder": grafana.FOLDER}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta,
                "data": {
                    f"conveyor-{env.namespace}-{kind}.json": grafana.dashboard_json(dashboard)
                },
            }
        )
    return out


def datasource(env: KubeEnvironment, prometheus_url: str = DEFAULT_PROMETHEUS) -> dict[str, Any]:
    """The Prometheus datasource the dashboards name (by uid), for the sidecar (label
    `grafana_datasource`)."""
    provisioning = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": f"Conveyor Prometheus ({env.namespace})",
                "uid": grafana.datasource_uid(env.namespace),
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": False,
                "editable": False,
            }
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("conveyor-datasource", env.namespace, {"grafana_datasource": "1"}),
        "data": {f"conveyor-{env.namespace}.yaml": yaml.safe_dump(provisioning, sort_keys=False)},
    }
