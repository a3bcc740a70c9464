"""Grafana dashboards for a project (pure): RED per service from HAProxy's series, USE for the
host from node exporter's, rollouts as annotations from Conveyor's own metrics; and the
provisioning files that point a Grafana at them and at the project's Prometheus.

Built with grafana-foundation-sdk (Grafana Labs' typed builders, generated from Grafana's
schemas, here for Grafana 11.6), so a panel or query of the wrong shape does not type-check;
the tests read every dashboard back through the SDK's models. They have not been loaded into a
running Grafana (none runs on these machines). Names and labels are docs/metrics.md's.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from grafana_foundation_sdk.builders.dashboard import AnnotationQuery, Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

FOLDER = "Conveyor"


@dataclass(frozen=True)
class GrafanaFile:
    path: str  # relative to the directory the user points Grafana at
    text: str


def datasource_uid(project: str) -> str:
    """The project's Prometheus as Grafana knows it (one per project: several can share a
    Grafana)."""
    return _uid(f"prom-{project}")


def _ds(project: str) -> DataSourceRef:
    return DataSourceRef(type_val="prometheus", uid=datasource_uid(project))


def _panel(project: str, title: str, unit: str, *queries: tuple[str, str]) -> Timeseries:
    """A time series panel, half the width; `queries` are (PromQL, legend)."""
    ds = _ds(project)
    panel = Timeseries().title(title).unit(unit).datasource(ds).height(8).span(12)
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        query = PromQuery().expr(expr).legend_format(legend).datasource(ds).ref_id(ref)
        panel = panel.with_target(query)
    return panel


def _rollouts(project: str) -> AnnotationQuery:
    """A mark wherever a rollout of the project finished, by result."""
    expr = (
        f'sum by (kind, result) (increase(conveyor_rollouts_total{{project="{project}"}}[1m])) > 0'
    )
    return (
        AnnotationQuery()
        .name("Rollouts")
        .datasource(_ds(project))
        .enable(True)
        .icon_color("#8F3BB8")
        .expr(expr)
    )


def _dashboard(project: str, title: str, kind: str) -> Dashboard:
    """A project's dashboard of `kind`, its last hour refreshed every 30 s, with rollouts as
    annotations."""
    return (
        Dashboard(f"Conveyor / {project} / {title}")
        .uid(_uid(f"{project}-{kind}"))
        .tags(["conveyor", project, kind])
        .refresh("30s")
        .time("now-1h", "now")
        .annotation(_rollouts(project))
    )


def red_dashboard(project: str) -> Dashboard:
    """Rate, errors and duration of every service, its entries and its replicas."""
    sel = f'project="{project}"'
    rate = "[$__rate_interval]"
    return (
        _dashboard(project, "services (RED)", "red")
        .with_row(Row("Requests"))
        .with_panel(
            _panel(
                project,
                "Request rate",
                "reqps",
                (
                    f"sum by (service) (rate(haproxy_backend_http_requests_total{{{sel}}}{rate}))",
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            _panel(
                project,
                "Requests by entry (external / internal)",
                "reqps",
                (
                    "sum by (service, edge) "
                    f"(rate(haproxy_frontend_http_requests_total{{{sel}}}{rate}))",
                    "{{service}} {{edge}}",
                ),
            )
        )
        .with_row(Row("Errors"))
        .with_panel(
            _panel(
                project,
                "5xx ratio",
                "percentunit",
                (
                    "sum by (service) (rate(haproxy_backend_http_responses_total"
                    f'{{{sel}, code="5xx"}}{rate})) / sum by (service) '
                    f"(rate(haproxy_backend_http_responses_total{{{sel}}}{rate}))",
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            _panel(
                project,
                "Connection and response errors",
                "short",
                (
                    "sum by (service) (rate(haproxy_backend_connection_errors_total"
                    f"{{{sel}}}{rate}) + rate(haproxy_backend_response_errors_total"
                    f"{{{sel}}}{rate}))",
                    "{{service}}",
                ),
            )
        )
        .with_row(Row("Duration"))
        .with_panel(
            _panel(
                project,
                "Latency p50 / p95 / p99 (HAProxy's access log)",
                "s",
                *(
                    (
                        f"histogram_quantile({q}, sum by (service, le) "
                        f"(rate(conveyor_http_request_duration_seconds_bucket{{{sel}}}{rate})))",
                        f"{{{{service}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
            )
        )
        .with_panel(
            _panel(
                project,
                "Response time (HAProxy average of the last 1024 requests)",
                "s",
                (
                    "avg by (service) "
                    f'(haproxy_backend_response_time_average_seconds{{{sel}, port=""}})',
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            _panel(
                project,
                "p95 from the replicas' own histograms (x-conveyor.metrics)",
                "s",
                (
                    "histogram_quantile(0.95, sum by (service, le) "
                    f"(rate(http_request_duration_seconds_bucket{{{sel}}}{rate})))",
                    "{{service}}",
                ),
            )
        )
        .with_row(Row("Replicas"))
        .with_panel(
            _panel(
                project,
                "Replicas running / desired",
                "short",
                (f"conveyor_service_replicas_running{{{sel}}}", "{{service}} running"),
                (f"conveyor_service_replicas_desired{{{sel}}}", "{{service}} desired"),
            )
        )
        .with_panel(
            _panel(
                project,
                "Replicas up in HAProxy",
                "short",
                (f"haproxy_backend_active_servers{{{sel}}}", "{{service}}"),
            )
        )
    )


def use_dashboard(project: str) -> Dashboard:
    """Utilisation, saturation and errors of the host's CPU, memory, disks and network."""
    rate = "[$__rate_interval]"
    fs = 'fstype!~"tmpfs|overlay|squashfs"'
    return (
        _dashboard(project, "host (USE)", "use")
        .with_row(Row("CPU"))
        .with_panel(
            _panel(
                project,
                "CPU utilisation",
                "percentunit",
                (f'1 - avg(rate(node_cpu_seconds_total{{mode="idle"}}{rate}))', "busy"),
            )
        )
        .with_panel(
            _panel(
                project,
                "CPU saturation (load per core)",
                "short",
                (
                    'node_load1 / count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})',
                    "load1 / cores",
                ),
            )
        )
        .with_row(Row("Memory"))
        .with_panel(
            _panel(
                project,
                "Memory utilisation",
                "percentunit",
                ("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "used"),
            )
        )
        .with_panel(
            _panel(
                project,
                "Memory saturation (pages swapped in and out)",
                "short",
                (f"rate(node_vmstat_pswpin{rate}) + rate(node_vmstat_pswpout{rate})", "swap"),
            )
        )
        .with_row(Row("Disks"))
        .with_panel(
            _panel(
                project,
                "Disk space used",
                "percentunit",
                (
                    f"1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}",
                    "{{mountpoint}}",
                ),
            )
        )
        .with_panel(
            _panel(
                project,
                "Disk busy (I/O time)",
                "percentunit",
                (f"rate(node_disk_io_time_seconds_total{rate})", "{{device}}"),
            )
        )
        .with_row(Row("Network"))
        .with_panel(
            _panel(
                project,
                "Network traffic",
                "Bps",
                (f'rate(node_network_receive_bytes_total{{device!="lo"}}{rate})', "{{device}} in"),
                (
                    f'rate(node_network_transmit_bytes_total{{device!="lo"}}{rate})',
                    "{{device}} out",
                ),
            )
        )
        .with_panel(
            _panel(
                project,
                "Network errors and drops",
                "short",
                (
                    f"rate(node_network_receive_errs_total{rate}) + "
                    f"rate(node_network_transmit_errs_total{rate}) + "
                    f"rate(node_network_receive_drop_total{rate})",
                    "{{device}}",
                ),
            )
        )
    )


def _uid(name: str) -> str:
    """Grafana uids are at most 40 characters of [A-Za-z0-9_-]."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"conveyor-{name}")
    return safe[:40]


def dashboard_json(dashboard: Dashboard) -> str:
    built = dashboard.build()
    # Grafana tells panels apart by id (links, annotations' panel filters): number them.
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return JSONEncoder(sort_keys=True, indent=2).encode(built) + "\n"


def files(project: str, prometheus_url: str, directory: str) -> list[GrafanaFile]:
    """Dashboards under `dashboards/`, and the provisioning files under `provisioning/`
    (Grafana's `paths.provisioning` points there; `directory` is where the user puts these
    files, as Grafana will see it)."""
    dashboards = {
        f"dashboards/{project}/red.json": red_dashboard(project),
        f"dashboards/{project}/use.json": use_dashboard(project),
    }
    out = [GrafanaFile(path, dashboard_json(d)) for path, d in dashboards.items()]
    datasources = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": f"Conveyor Prometheus ({project})",
                "uid": datasource_uid(project),
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": False,
                "editable": False,
            }
        ],
    }
    providers = {
        "apiVersion": 1,
        "providers": [
            {
                "name": f"conveyor-{project}",
                "folder": FOLDER,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "options": {"path": f"{directory.rstrip('/')}/dashboards/{project}"},
            }
        ],
    }
    out += [
        GrafanaFile(
            f"provisioning/datasources/conveyor-{project}.yaml", yaml.safe_dump(datasources)
        ),
        GrafanaFile(f"provisioning/dashboards/conveyor-{project}.yaml", yaml.safe_dump(providers)),
    ]
    return out
