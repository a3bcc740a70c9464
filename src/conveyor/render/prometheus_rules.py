"""Render Prometheus rule files: RED recording rules per service and edge, the alerts of a
project's services and of the host, and multi-window burn-rate alerts from SLOs. Pure: no I/O.

Written against the metric names and labels of docs/metrics.md (HAProxy's exporter relabelled
with `project`, `environment`, `service`, `edge`; node exporter; Conveyor's own metrics), and
loaded by Prometheus from `<metrics>/prometheus/rules/*.yml`. docs/alerts.md is the reader's
side of this module: every rule, the burn-rate arithmetic, the latency sources.

Three kinds of file (`rule_files` gives them all, by name):

- `conveyor-red.yml`: recording rules for every service of every project the Prometheus
  watches (they aggregate by label, so one copy serves them all) and the service alerts
  (down, error ratio, latency, replicas below desired, a failing rollout, HAProxy's and
  Conveyor's own endpoints down). The service alerts hold the built-in `AlertSettings` for
  every service but those with thresholds of their own (`AlertTarget`: x-conveyor.alerts,
  conveyor.yaml's environment defaults), which get a copy of the alerts selecting them alone,
  with their thresholds in the expressions and `for:` (the shared copy leaves them out
  through the OWN_THRESHOLDS markers recorded in the same group).
- `conveyor-host.yml`: the host's disks (node exporter).
- `conveyor-slo-<project>.yml`: one project's SLOs, per service: the objectives as series and
  the burn-rate alerts (14.4x over 1 h and 5 min, 6x over 6 h and 30 min: the SRE workbook's
  two paging pairs).

Latency: HAProxy 2.6 exports averages over its last 1024 requests, not distributions, so a
latency objective ("99 % within 300 ms") is measured from a histogram: the replicas' own
`http_request_duration_seconds` (a service that declares `x-conveyor.metrics`), else Conveyor's
`conveyor_http_request_duration_seconds` when Conveyor exports one (HISTOGRAMS, in that order).
The share of slow requests is read at the bucket whose bound is the threshold, so the threshold
must be one of the histogram's bucket bounds; `SLOLatencyNotMeasured` fires when a service with
traffic has no such bucket. Without a histogram, `ServiceLatencyHigh` falls back to HAProxy's
average, which is not an SLO (an average hides the slow tail) and says so in its labels.

`VALIDATOR` is `promtool check rules` (with its duplicate-rule lint made fatal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import yaml

from conveyor.model.alert_thresholds import AlertThresholds
from conveyor.model.slo import ServiceSLO
from conveyor.plan.backup import MISSED_FACTOR
from conveyor.render.validator import Validator

V = TypeVar("V")

INSTALL_HINT = "apt-get install prometheus (Debian's package; it brings promtool)"

VALIDATOR = Validator(
    name="promtool",
    argv=("promtool", "check", "rules", "--lint=all", "--lint-fatal", "{file}"),
    install_hint=INSTALL_HINT,
)
# Prometheus's unit tests of rules (input series -> the alerts expected at given times), run on
# a test file whose `rule_files` name rendered rule files.
TEST_RUNNER = Validator(
    name="promtool test rules",
    argv=("promtool", "test", "rules", "{file}"),
    install_hint=INSTALL_HINT,
)

RED_FILE = "conveyor-red.yml"
HOST_FILE = "conveyor-host.yml"
BACKUP_FILE = "conveyor-backups.yml"
SLO_PREFIX = "conveyor-slo-"

# The windows every service's RED figures are recorded over: the four the burn-rate pairs use.
WINDOWS = ("5m", "30m", "1h", "6h")
EDGE_WINDOWS = ("5m", "1h")
SERVICE = ("project", "environment", "service")
EDGE = (*SERVICE, "edge")

# (metric, extra selector) of the latency histograms, in the order they are preferred.
HISTOGRAMS: tuple[tuple[str, str], ...] = (
    ("http_request_duration_seconds", 'job="replicas"'),
    ("conveyor_http_request_duration_seconds", 'job="conveyor"'),
)

# The SRE workbook's paging pairs: (burn rate, long window, short window).
BURN_RATES: tuple[tuple[float, str, str], ...] = ((14.4, "1h", "5m"), (6.0, "6h", "30m"))

# Filesystems that are not disks a service fills (node exporter's usual exclusions).
_NOT_DISKS = (
    'fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|proc|sysfs|fuse.*",mountpoint!~"/run($|/.*)"'
)
_5XX = 'code="5xx"'


@dataclass(frozen=True)
class AlertSettings:
    """The thresholds of the service alerts that hold without an SLO."""

    error_ratio: float = 0.05  # 5xx / responses over 5 min
    min_rate: float = 0.1  # requests/s below which an error ratio is noise, not news
    latency: float = 1.0  # seconds: p95 from a histogram, else HAProxy's average
    # No replica in rotation this long: ServiceDown (a page). With 5 s scrapes and evaluations
    # and Alertmanager's 5 s group_wait (10 s group_interval once the group exists), a fault
    # is told within about 30 s (issue 10's target; bench/alert_delay.py measures it).
    down_for: str = "10s"
    error_for: str = "5m"
    latency_for: str = "10m"
    replicas_for: str = "2m"  # longer than a replica's replacement by the reconciler
    rollout_window: str = "15m"  # a failed rollout stays firing this long
    endpoint_for: str = "1m"  # HAProxy's or Conveyor's metrics endpoint unreachable

    def over(self, thresholds: AlertThresholds) -> AlertSettings:
        """These settings with what `thresholds` sets instead (durations as Prometheus's)."""
        given = thresholds.given()
        changed: dict[str, Any] = {
            k: duration(v) if k.endswith("_for") else v for k, v in given.items()
        }
        return replace(self, **changed)


@dataclass(frozen=True)
class AlertTarget:
    """One service whose alerts have thresholds of their own (x-conveyor.alerts, or its
    environment's defaults in conveyor.yaml)."""

    project: str
    environment: str
    service: str
    thresholds: AlertThresholds


@dataclass(frozen=True)
class SLOTarget:
    """One service's objectives in one environment (a project on the host)."""

    project: str
    environment: str
    service: str
    slo: ServiceSLO


# ---- helpers ----------------------------------------------------------------------------------


def number(value: float) -> str:
    """A float as PromQL and labels show it: `0.001`, not `0.0010000000000000009`."""
    return f"{value:.9g}"


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration in its largest whole unit: `30s`, `2m`, `1500ms`."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.9g}%"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _selector(**labels: str) -> str:
    return ",".join(f"{k}={_quote(v)}" for k, v in labels.items())


def le_pattern(threshold: float) -> str:
    """A regular expression matching the `le` label of the bucket bounded at `threshold`,
    however the client wrote the number (`0.3`, `1`, `1.0`). `[.]`, not a backslash: PromQL
    strings would need it doubled."""
    text = number(threshold)
    if "e" in text:  # beyond what a bucket bound is written as; match it literally
        return text.replace(".", "[.]").replace("+", "[+]")
    whole, _, frac = text.partition(".")
    if not frac:
        return f"{whole}([.]0+)?"
    return f"{whole}[.]{frac}0*"


def _by(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def _record(name: str, expr: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def _alert(
    name: str,
    expr: str,
    *,
    for_: str | None,
    labels: Mapping[str, str],
    summary: str,
    description: str,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = dict(labels)
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def _dump(groups: list[dict[str, Any]], module: str) -> str:
    header = f"# Rendered by Conveyor ({module}). The next change rewrites it.\n"
    body = yaml.safe_dump(
        {"groups": groups}, sort_keys=False, default_flow_style=False, width=10_000
    )
    return header + body


# ---- recording rules --------------------------------------------------------------------------

HAPROXY = 'job="haproxy",service!=""'


def _backend(metric: str, window: str, extra: str = "") -> str:
    selector = HAPROXY + (f",{extra}" if extra else "")
    return f"sum by ({_by(SERVICE)}) (rate(haproxy_backend_{metric}{{{selector}}}[{window}]))"


def _frontend(metric: str, window: str, extra: str = "") -> str:
    selector = HAPROXY + ',edge!=""' + (f",{extra}" if extra else "")
    return f"sum by ({_by(EDGE)}) (rate(haproxy_frontend_{metric}{{{selector}}}[{window}]))"


def _histogram_buckets(window: str) -> str:
    """The latency buckets of each service from the first histogram it has (HISTOGRAMS)."""
    parts = [
        f'sum by ({_by(SERVICE)}, le) (rate({metric}_bucket{{{selector},service!=""}}[{window}]))'
        for metric, selector in HISTOGRAMS
    ]
    return f" or on ({_by(SERVICE)}) ".join(f"({p})" for p in parts)


def red_recording_rules() -> list[dict[str, Any]]:
    """RED per service (every window) and per edge: rate, errors, error ratio, latency."""
    rules: list[dict[str, Any]] = []
    for w in WINDOWS:
        rules += [
            _record(f"service:haproxy_http_requests:rate{w}", _backend("http_requests_total", w)),
            _record(
                f"service:haproxy_http_responses:rate{w}",
                _backend("http_responses_total", w),
            ),
            _record(
                f"service:haproxy_http_responses_5xx:rate{w}",
                _backend("http_responses_total", w, _5XX),
            ),
            _record(
                f"service:haproxy_http_error_ratio:rate{w}",
                f"service:haproxy_http_responses_5xx:rate{w} / "
                f"service:haproxy_http_responses:rate{w}",
            ),
            # TCP services have sessions, not requests
            _record(f"service:haproxy_sessions:rate{w}", _backend("sessions_total", w)),
        ]
    for w in EDGE_WINDOWS:
        rules += [
            _record(
                f"service_edge:haproxy_http_requests:rate{w}",
                _frontend("http_requests_total", w),
            ),
            _record(
                f"service_edge:haproxy_http_error_ratio:rate{w}",
                f"{_frontend('http_responses_total', w, _5XX)} / "
                f"{_frontend('http_responses_total', w)}",
            ),
        ]
    rules += [
        # HAProxy's own latency figure: the average of its last 1024 requests, per port's
        # backend; the slowest port speaks for the service.
        _record(
            "service:haproxy_response_time_average_seconds:avg5m",
            f"max by ({_by(SERVICE)}) (avg_over_time("
            f"haproxy_backend_response_time_average_seconds{{{HAPROXY}}}[5m]))",
        ),
        _record("service:request_duration_seconds_bucket:rate5m", _histogram_buckets("5m")),
    ]
    for q in ("50", "95", "99"):
        rules.append(
            _record(
                f"service:request_duration_seconds:p{q}_5m",
                f"histogram_quantile(0.{q}, service:request_duration_seconds_bucket:rate5m)",
            )
        )
    return rules


# ---- service alerts -----------------------------------------------------------------------------


# Set (to 1) for every service with thresholds of its own: the shared alerts leave it out.
# Recorded in the alerts' group, before them: a group's rules run in order, so the alerts
# read this evaluation's markers (across groups they could be one evaluation apart).
OWN_THRESHOLDS = "service:alert_thresholds:own"


def service_alerts(
    settings: AlertSettings, who: Mapping[str, str] | None = None, *, but_own: bool = False
) -> list[dict[str, Any]]:
    """The alerts of every service (`who` None) or of one (`who`: its project, environment
    and service labels) with `settings`' thresholds. `but_own`: leave out the services that
    have their own (OWN_THRESHOLDS)."""
    s = settings
    svc = "{{ $labels.service }} ({{ $labels.environment }})"
    by = _by(SERVICE)
    one = "{" + _selector(**who) + "}" if who else ""
    also = "," + _selector(**who) if who else ""
    labels = dict(who or {})
    unless_own = f" unless on ({by}) {OWN_THRESHOLDS}" if but_own else ""
    desired = f"max by ({by}) (conveyor_service_replicas_desired{one})"
    running = f"max by ({by}) (conveyor_service_replicas_running{one})"
    rules = [
        _alert(
            "ServiceDown",
            f"sum by ({by}) (haproxy_backend_active_servers{{{HAPROXY}{also}}}) == 0 "
            f"unless on ({by}) ({desired} == 0){unless_own}",
            for_=s.down_for,
            labels={**labels, "severity": "page"},
            summary=f"{svc} is down: no replica is in rotation",
            description=(
                "HAProxy has no replica of the service up in its backend; requests to it get "
                "503. The service is not scaled to zero."
            ),
        ),
        _alert(
            "ServiceErrorRatioHigh",
            f"service:haproxy_http_error_ratio:rate5m{one} > {number(s.error_ratio)} "
            f"and service:haproxy_http_requests:rate5m{one} > {number(s.min_rate)}{unless_own}",
            for_=s.error_for,
            labels={**labels, "severity": "ticket"},
            summary=f"{svc} answers {{{{ $value | humanizePercentage }}}} of requests with 5xx",
            description=(
                f"More than {percent(s.error_ratio)} of the service's responses over 5 minutes "
                "were 5xx (HAProxy's count, its own 503s included)."
            ),
        ),
        _alert(
            "ServiceLatencyHigh",
            f"service:request_duration_seconds:p95_5m{one} > {number(s.latency)}{unless_own}",
            for_=s.latency_for,
            labels={**labels, "severity": "ticket", "latency_source": "histogram"},
            summary=f"{svc}: 5 % of requests take over {{{{ $value | humanizeDuration }}}}",
            description=(
                f"The 95th percentile of response time over 5 minutes is above "
                f"{number(s.latency)} s (from the service's latency histogram)."
            ),
        ),
        _alert(
            "ServiceLatencyHigh",
            f"service:haproxy_response_time_average_seconds:avg5m{one} > {number(s.latency)} "
            f"unless on ({by}) service:request_duration_seconds:p95_5m{one}{unless_own}",
            for_=s.latency_for,
            labels={**labels, "severity": "ticket", "latency_source": "haproxy-average"},
            summary=f"{svc} answers in {{{{ $value | humanizeDuration }}}} on average",
            description=(
                f"HAProxy's average response time (of its last 1024 requests, averaged over "
                f"5 minutes) stayed above {number(s.latency)} s for {s.latency_for}. The "
                "service exports no latency "
                "histogram, so this is an average: it hides how slow the slowest requests are."
            ),
        ),
        _alert(
            "ServiceReplicasBelowDesired",
            f"{running} < {desired} "
            f"unless on (project, environment) (conveyor_rollouts_in_progress > 0){unless_own}",
            for_=s.replicas_for,
            labels={**labels, "severity": "ticket"},
            summary=f"{svc} runs {{{{ $value }}}} replica(s), fewer than desired",
            description=(
                "Fewer replicas run than the serving release asks for, outside a rollout; "
                "the reconciler has not brought them back."
            ),
        ),
    ]
    return rules


def project_alerts(settings: AlertSettings) -> list[dict[str, Any]]:
    """The alerts about a project's machinery rather than one service: a failing rollout,
    HAProxy's and Conveyor's metrics endpoints down."""
    s = settings
    failed = 'conveyor_rollouts_total{result!="succeeded"}'
    window = s.rollout_window
    return [
        _alert(
            "RolloutFailed",
            # A counter's series is created by its first failure: the `unless ... offset`
            # half counts a series that did not exist a window ago, which increase() cannot.
            f"sum by (project, environment, kind, result) ("
            f"(increase({failed}[{window}]) > 0) or ({failed} unless {failed} offset {window}))",
            for_=None,
            labels={"severity": "ticket"},
            summary=(
                "{{ $labels.environment }}: a {{ $labels.kind }} rollout ended {{ $labels.result }}"
            ),
            description=(
                f"{{{{ $value }}}} rollout(s) of kind {{{{ $labels.kind }}}} ended "
                f"{{{{ $labels.result }}}} in the last {window} "
                "(`conveyor history` tells which and why)."
            ),
        ),
        _alert(
            "ProxyMetricsDown",
            'up{job="haproxy"} == 0',
            for_=s.endpoint_for,
            labels={"severity": "page"},
            summary="HAProxy of {{ $labels.project }} does not answer its metrics endpoint",
            description=(
                "Prometheus cannot scrape the project's HAProxy: it may be down, and every "
                "service with it; the service alerts cannot tell while it does not answer."
            ),
        ),
        _alert(
            "ConveyorMetricsDown",
            'up{job="conveyor"} == 0',
            for_=s.endpoint_for,
            labels={"severity": "ticket"},
            summary="Conveyor's {{ $labels.component }} does not answer its metrics endpoint",
            description=(
                "The agent (or server) that heals the project's services is not running or "
                "not answering: replicas that die are not replaced meanwhile."
            ),
        ),
    ]


def own_alerts(settings: AlertSettings, targets: Iterable[AlertTarget]) -> list[dict[str, Any]]:
    """The markers of the services with thresholds of their own, then their alerts: the
    shared ones with each service's thresholds and selector. A service whose thresholds come
    to the defaults is left to the shared alerts."""
    markers: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for t in sorted(targets, key=lambda t: (t.project, t.environment, t.service)):
        own = settings.over(t.thresholds)
        if own == settings:
            continue
        who = {"project": t.project, "environment": t.environment, "service": t.service}
        markers.append(_record(OWN_THRESHOLDS, "vector(1)", who))
        alerts += service_alerts(own, who)
    return markers + alerts


def red_rules(settings: AlertSettings = AlertSettings(), own: Iterable[AlertTarget] = ()) -> str:
    """conveyor-red.yml: recording rules, then the service alerts (which read them): those of
    the services in `own` with their thresholds, the shared ones for every other service."""
    mine = own_alerts(settings, own)
    alerts = mine + service_alerts(settings, but_own=bool(mine)) + project_alerts(settings)
    groups = [
        {"name": "conveyor-red", "rules": red_recording_rules()},
        {"name": "conveyor-services", "rules": alerts},
    ]
    return _dump(groups, "conveyor.render.prometheus_rules")


# ---- host ---------------------------------------------------------------------------------------


def host_rules() -> str:
    """conveyor-host.yml: a disk filling up (from its last 6 h), or almost full."""
    avail = f'node_filesystem_avail_bytes{{job="node",{_NOT_DISKS}}}'
    size = f'node_filesystem_size_bytes{{job="node",{_NOT_DISKS}}}'
    writable = f'node_filesystem_readonly{{job="node",{_NOT_DISKS}}} == 0'
    where = "{{ $labels.mountpoint }} ({{ $labels.device }})"
    free = "{{ $value | humanizePercentage }} free"

    def filling(name: str, hours: int, below: float, for_: str, severity: str) -> dict[str, Any]:
        return _alert(
            name,
            f"({avail} / {size} < {number(below)}) "
            f"and predict_linear({avail}[6h], {hours} * 3600) < 0 and {writable}",
            for_=for_,
            labels={"severity": severity},
            summary=f"{where} will be full within {hours} hours ({free})",
            description=(
                f"At the rate of the last 6 hours the filesystem runs out of space within "
                f"{hours} hours; less than {percent(below)} of it is free."
            ),
        )

    rules = [
        filling("HostDiskFillingUp", 24, 0.4, "1h", "ticket"),
        filling("HostDiskFillingUpSoon", 4, 0.2, "30m", "page"),
        _alert(
            "HostDiskAlmostFull",
            f"({avail} / {size} < 0.05) and {writable}",
            for_="5m",
            labels={"severity": "page"},
            summary=f"{where} is almost full ({free})",
            description="Less than 5% of the filesystem is free.",
        ),
    ]
    return _dump([{"name": "conveyor-host", "rules": rules}], "conveyor.render.prometheus_rules")


# ---- backups ------------------------------------------------------------------------------------


def backup_rules() -> str:
    """conveyor-backups.yml: a service a backup schedule covers has had no successful backup
    for MISSED_FACTOR times the schedule's interval (from the server's own metrics; a service
    never backed up counts from when the server started watching the schedule)."""
    who = "project, environment, service"
    expr = (
        f"time() - max by ({who}) (conveyor_backup_last_success_timestamp_seconds "
        f"or conveyor_backup_schedule_since_timestamp_seconds) "
        f"> {number(MISSED_FACTOR)} * max by ({who}) (conveyor_backup_schedule_interval_seconds)"
    )
    rule = _alert(
        "ConveyorBackupMissed",
        expr,
        for_="5m",
        labels={"severity": "ticket"},
        summary="{{ $labels.service }} ({{ $labels.environment }}) missed its backup schedule",
        description=(
            f"No backup of the service succeeded for {number(MISSED_FACTOR)} times its "
            "schedule's interval: `conveyor backup list` shows the last one, the timeline "
            "the backup.failed events."
        ),
    )
    return _dump(
        [{"name": "conveyor-backups", "rules": [rule]}], "conveyor.render.prometheus_rules"
    )


# ---- SLOs ---------------------------------------------------------------------------------------


def _slow_ratio(target: SLOTarget, threshold: float, window: str) -> str:
    """The share of one service's requests slower than `threshold` over `window`, from the
    first histogram that has a bucket at the threshold."""
    who = _selector(project=target.project, environment=target.environment, service=target.service)
    le = le_pattern(threshold)
    by = _by(SERVICE)
    parts = []
    for metric, selector in HISTOGRAMS:
        fast = f'sum by ({by}) (rate({metric}_bucket{{{selector},{who},le=~"{le}"}}[{window}]))'
        every = f"sum by ({by}) (rate({metric}_count{{{selector},{who}}}[{window}]))"
        # no bucket at the threshold: no `fast` series, so no ratio (not a ratio of 1)
        parts.append(f"(1 - {fast} / {every})")
    return f" or on ({by}) ".join(parts)


def _burn_alerts(
    target: SLOTarget, slo: str, series: str, budget: float, objective: str
) -> list[dict[str, Any]]:
    who = _selector(project=target.project, environment=target.environment, service=target.service)
    what = {"availability": "5xx responses", "latency": "slow requests"}[slo]
    out = []
    for rate, long, short in BURN_RATES:
        limit = f"({number(rate)} * {number(budget)})"
        share = round(rate * _hours(long) / (30 * 24) * 100, 1)
        out.append(
            _alert(
                "ErrorBudgetBurn",
                f"{series}{long}{{{who}}} > {limit} and {series}{short}{{{who}}} > {limit}",
                for_=None,
                labels={
                    **_labels(target),
                    "severity": "page",
                    "slo": slo,
                    "burn_rate": number(rate),
                    "long_window": long,
                    "short_window": short,
                },
                summary=(
                    f"{target.service} ({target.environment}) burns its {slo} error budget "
                    f"{number(rate)}x too fast"
                ),
                # No `$value` here: rule groups are evaluated concurrently, so the ratio an
                # alert reads can be one evaluation apart from run to run (promtool tests too).
                description=(
                    f"{what.capitalize()} were more than {number(rate)} times the budget of "
                    f"the {objective} {slo} objective over both the last {long} and "
                    f"{short}. Burning at {number(rate)}x spends {number(share)}% of a 30-day "
                    f"budget in {long}."
                ),
            )
        )
    return out


def _labels(target: SLOTarget) -> dict[str, str]:
    """The labels the series of a target have anyway, said on its rules too: promtool's lint
    (and a reader) tells the rules of two services apart by them."""
    return {"project": target.project, "environment": target.environment, "service": target.service}


def _hours(window: str) -> float:
    unit = {"m": 1 / 60, "h": 1.0, "d": 24.0}[window[-1]]
    return float(window[:-1]) * unit


def slo_rules(targets: Iterable[SLOTarget]) -> str:
    """conveyor-slo-<project>.yml: each target's objectives as series, its slow-request ratios
    (latency objectives), and its burn-rate alerts."""
    chosen = sorted(targets, key=lambda t: (t.project, t.environment, t.service))
    records: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for t in chosen:
        labels = _labels(t)
        who = _selector(**labels)
        if t.slo.availability is not None:
            budget = 1.0 - t.slo.availability
            records.append(
                _record(
                    "slo:objective:ratio",
                    f"vector({number(t.slo.availability)})",
                    {**labels, "slo": "availability"},
                )
            )
            alerts += _burn_alerts(
                t,
                "availability",
                "service:haproxy_http_error_ratio:rate",
                budget,
                percent(t.slo.availability),
            )
        if t.slo.latency is not None:
            lat = t.slo.latency
            budget = 1.0 - lat.objective
            records.append(
                _record(
                    "slo:objective:ratio",
                    f"vector({number(lat.objective)})",
                    {**labels, "slo": "latency", "threshold": number(lat.threshold)},
                )
            )
            for w in WINDOWS:
                records.append(
                    _record(
                        f"service:request_duration_seconds_slow:ratio_rate{w}",
                        _slow_ratio(t, lat.threshold, w),
                        labels,
                    )
                )
            objective = f"{percent(lat.objective)} within {number(lat.threshold)} s"
            alerts += _burn_alerts(
                t, "latency", "service:request_duration_seconds_slow:ratio_rate", budget, objective
            )
            alerts.append(
                _alert(
                    "SLOLatencyNotMeasured",
                    f"service:haproxy_http_requests:rate1h{{{who}}} > 0 unless on "
                    f"({_by(SERVICE)}) service:request_duration_seconds_slow:ratio_rate1h{{{who}}}",
                    for_="30m",
                    labels={**labels, "severity": "ticket", "slo": "latency"},
                    summary=(
                        f"{t.service} ({t.environment}): its latency objective cannot be evaluated"
                    ),
                    description=(
                        f"The service has traffic but no latency histogram with a bucket "
                        f'bounded at {number(lat.threshold)} s (le="{number(lat.threshold)}"): '
                        "export http_request_duration_seconds with that bucket bound "
                        "(x-conveyor.metrics), or set the threshold to one of its bounds."
                    ),
                )
            )
    if not records:
        return _dump([], "conveyor.render.prometheus_rules")
    projects = sorted({t.project for t in chosen})
    name = f"conveyor-slo-{projects[0]}" if len(projects) == 1 else "conveyor-slo"
    groups = [{"name": name, "rules": records + alerts}]
    return _dump(groups, "conveyor.render.prometheus_rules")


def slo_file(project: str) -> str:
    return f"{SLO_PREFIX}{project}.yml"


def slo_targets(
    project: str, environment: str, slos: Mapping[str, ServiceSLO | None]
) -> list[SLOTarget]:
    """The targets of one project from its services' SLOs (services without one left out)."""
    return [SLOTarget(project, environment, name, slo) for name, slo in _given(slos)]


def alert_targets(
    project: str, environment: str, thresholds: Mapping[str, AlertThresholds | None]
) -> list[AlertTarget]:
    """The services of one project with thresholds of their own (the others left out)."""
    return [AlertTarget(project, environment, name, own) for name, own in _given(thresholds)]


def _given(values: Mapping[str, V | None]) -> list[tuple[str, V]]:
    """The services that have a value, by name."""
    return [(name, value) for name, value in sorted(values.items()) if value is not None]


def rule_files(
    targets: Iterable[SLOTarget],
    settings: AlertSettings = AlertSettings(),
    own: Iterable[AlertTarget] = (),
) -> dict[str, str]:
    """Every rule file Conveyor owns in a rules directory, by file name: the shared RED rules
    (with the alerts of the services in `own` at their thresholds), the host rules and one
    SLO file per project that has objectives."""
    files = {RED_FILE: red_rules(settings, own), HOST_FILE: host_rules()}
    files[BACKUP_FILE] = backup_rules()
    by_project: dict[str, list[SLOTarget]] = {}
    for t in targets:
        by_project.setdefault(t.project, []).append(t)
    for project, items in sorted(by_project.items()):
        files[slo_file(project)] = slo_rules(items)
    return files


def owned(name: str) -> bool:
    """Whether a file of the rules directory is one `rule_files` writes (stale ones of
    projects gone are removed; anything else a user put there is left alone)."""
    return name in (RED_FILE, HOST_FILE, BACKUP_FILE) or (
        name.startswith(SLO_PREFIX) and name.endswith(".yml")
    )
