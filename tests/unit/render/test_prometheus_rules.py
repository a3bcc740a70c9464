"""render.prometheus_rules, read as data: which files, which rules, the label matching and the
burn-rate thresholds (promtool runs them in test_rules_promtool.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from conveyor.model.slo import LatencyObjective, ServiceSLO
from conveyor.render import prometheus_rules as rules


def _rules(text: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load(text)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts(text: str, name: str) -> list[dict[str, Any]]:
    return [r for r in _rules(text) if r.get("alert") == name]


@pytest.mark.parametrize(
    ("threshold", "matches", "misses"),
    [
        (0.3, ["0.3", "0.30", "0.300"], ["0.35", "0.03", "3", "0.3e0"]),
        (1.0, ["1", "1.0", "1.00"], ["10", "1.5", "0.1", "11"]),
        (2.5, ["2.5", "2.50"], ["2.05", "25"]),
        (0.005, ["0.005"], ["0.05", "0.0050001"]),
    ],
)
def test_le_pattern_matches_the_bound_however_a_client_writes_it(
    threshold: float, matches: list[str], misses: list[str]
) -> None:
    pattern = re.compile(rules.le_pattern(threshold))  # RE2 and re agree on this subset
    assert all(pattern.fullmatch(m) for m in matches)
    assert not any(pattern.fullmatch(m) for m in misses)


def test_numbers_lose_float_dust() -> None:
    assert rules.number(1 - 0.999) == "0.001"
    assert rules.number(14.4) == "14.4"
    assert rules.number(6.0) == "6"
    assert rules.percent(0.9995) == "99.95%"


def test_without_slos_only_the_shared_files() -> None:
    files = rules.rule_files([])
    assert sorted(files) == [rules.BACKUP_FILE, rules.HOST_FILE, rules.RED_FILE]
    assert all(rules.owned(name) for name in files)
    assert rules.owned("conveyor-slo-gone.yml")
    assert not rules.owned("mine.yml") and not rules.owned("conveyor-slo-x.yml.tmp")


def test_slo_targets_leave_out_services_without_objectives() -> None:
    slo = ServiceSLO(availability=0.99)
    targets = rules.slo_targets("shop", "shop", {"web": slo, "db": None})
    assert targets == [rules.SLOTarget("shop", "shop", "web", slo)]


def test_every_alert_says_how_urgent_it_is_and_what_happened() -> None:
    latency = LatencyObjective(threshold=0.25, objective=0.95)
    slo = ServiceSLO(availability=0.999, latency=latency)
    files = rules.rule_files([rules.SLOTarget("shop", "shop", "web", slo)])
    alerts = [r for text in files.values() for r in _rules(text) if "alert" in r]
    names = {a["alert"] for a in alerts}
    assert names == {
        "ServiceDown",
        "ServiceErrorRatioHigh",
        "ServiceLatencyHigh",
        "ServiceReplicasBelowDesired",
        "RolloutFailed",
        "ProxyMetricsDown",
        "ConveyorMetricsDown",
        "HostDiskFillingUp",
        "HostDiskFillingUpSoon",
        "HostDiskAlmostFull",
        "ErrorBudgetBurn",
        "SLOLatencyNotMeasured",
        "ConveyorBackupMissed",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket"), alert["alert"]
        assert set(alert["annotations"]) == {"summary", "description"}, alert["alert"]


def test_haproxy_series_of_no_service_are_never_read() -> None:
    """HAProxy's stats proxy and process-wide series carry no `service` label."""
    text = rules.red_rules()
    selectors = re.findall(r"haproxy_(?:backend|frontend)_\w+\{([^}]*)\}", text)
    assert selectors
    assert all('service!=""' in s for s in selectors)


def test_alert_thresholds_come_from_the_settings() -> None:
    text = rules.red_rules(rules.AlertSettings(error_ratio=0.02, latency=0.5, down_for="30s"))
    (errors,) = _alerts(text, "ServiceErrorRatioHigh")
    assert "service:haproxy_http_error_ratio:rate5m > 0.02 " in errors["expr"]
    assert all(" > 0.5" in a["expr"] for a in _alerts(text, "ServiceLatencyHigh"))
    assert _alerts(text, "ServiceDown")[0]["for"] == "30s"


def test_burn_rate_pairs_compare_both_windows_with_the_budget_times_the_rate() -> None:
    slo = ServiceSLO(availability=0.995)
    text = rules.slo_rules([rules.SLOTarget("shop", "production", "api", slo)])
    burns = _alerts(text, "ErrorBudgetBurn")
    pairs = [(b["labels"]["burn_rate"], b["labels"]["long_window"]) for b in burns]
    assert pairs == [("14.4", "1h"), ("6", "6h")]
    who = '{project="shop",environment="production",service="api"}'
    assert burns[0]["expr"] == (
        f"service:haproxy_http_error_ratio:rate1h{who} > (14.4 * 0.005) and "
        f"service:haproxy_http_error_ratio:rate5m{who} > (14.4 * 0.005)"
    )
    assert burns[1]["expr"].startswith(f"service:haproxy_http_error_ratio:rate6h{who} > (6 * ")
    assert "rate30m" in burns[1]["expr"]
    assert all("for" not in b for b in burns)  # the short window is what ends them early


def test_latency_objectives_read_the_bucket_at_the_threshold_of_either_histogram() -> None:
    slo = ServiceSLO(latency=LatencyObjective(threshold=0.5, objective=0.99))
    text = rules.slo_rules([rules.SLOTarget("shop", "shop", "web", slo)])
    records = {r["record"]: r["expr"] for r in _rules(text) if "record" in r}
    slow = records["service:request_duration_seconds_slow:ratio_rate1h"]
    assert 'http_request_duration_seconds_bucket{job="replicas"' in slow
    assert 'conveyor_http_request_duration_seconds_bucket{job="conveyor"' in slow
    assert slow.count('le=~"0[.]50*"') == 2
    assert " or on (project, environment, service) " in slow
    assert records["slo:objective:ratio"] == "vector(0.99)"


def test_an_empty_slo_file_is_still_a_rules_file() -> None:
    assert yaml.safe_load(rules.slo_rules([])) == {"groups": []}
