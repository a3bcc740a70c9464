"""Services with alert thresholds of their own in conveyor-red.yml, read as data: their own
copy of the service alerts (selected by labels, their thresholds in the expressions and
`for:`), markers the shared copy leaves them out by (promtool runs both in
promtool/thresholds.test.yml)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from conveyor.model.alert_thresholds import AlertThresholds
from conveyor.render import prometheus_rules as rules

WHO = '{project="shop",environment="production",service="checkout"}'
OWN = AlertThresholds(error_ratio=0.02, latency=0.5, down_for=30.0, error_for=90.0)


def _services_group(text: str) -> list[dict[str, Any]]:
    (group,) = [g for g in yaml.safe_load(text)["groups"] if g["name"] == "conveyor-services"]
    rules_: list[dict[str, Any]] = group["rules"]
    return rules_


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(30.0, "30s"), (120.0, "2m"), (90.0, "90s"), (7200.0, "2h"), (1.5, "1500ms"), (0, "0s")],
)
def test_durations_are_written_in_their_largest_whole_unit(seconds: float, written: str) -> None:
    assert rules.duration(seconds) == written


def test_settings_take_what_thresholds_set_and_keep_the_rest() -> None:
    own = rules.AlertSettings().over(OWN)
    assert (own.error_ratio, own.latency, own.down_for, own.error_for) == (0.02, 0.5, "30s", "90s")
    assert (own.min_rate, own.latency_for) == (0.1, "10m")  # the built-in defaults


def test_a_service_with_its_own_thresholds_has_its_own_alerts_and_a_marker() -> None:
    text = rules.red_rules(own=[rules.AlertTarget("shop", "production", "checkout", OWN)])
    group = _services_group(text)

    marker = group[0]
    assert marker == {
        "record": rules.OWN_THRESHOLDS,
        "expr": "vector(1)",
        "labels": {"project": "shop", "environment": "production", "service": "checkout"},
    }
    mine = [r for r in group if r.get("labels", {}).get("service") == "checkout" and "alert" in r]
    assert [r["alert"] for r in mine] == [
        "ServiceDown",
        "ServiceErrorRatioHigh",
        "ServiceLatencyHigh",
        "ServiceLatencyHigh",
        "ServiceReplicasBelowDesired",
    ]
    errors = mine[1]
    assert errors["expr"] == (
        f"service:haproxy_http_error_ratio:rate5m{WHO} > 0.02 "
        f"and service:haproxy_http_requests:rate5m{WHO} > 0.1"
    )
    assert errors["for"] == "90s"
    assert mine[0]["for"] == "30s"
    assert all(" > 0.5" in r["expr"] for r in mine[2:4])
    # the shared copy: every service but those with a marker, at the defaults
    shared = [r for r in group if "alert" in r and "service" not in r.get("labels", {})]
    per_service = [r for r in shared if r["alert"].startswith("Service")]
    assert len(per_service) == 5
    assert all(
        r["expr"].endswith(f" unless on (project, environment, service) {rules.OWN_THRESHOLDS}")
        for r in per_service
    )
    assert "> 0.05 " in per_service[1]["expr"]
    # the markers come first: a group runs its rules in order
    assert all("record" in r for r in group[:1]) and all("alert" in r for r in group[1:])


def test_without_own_thresholds_the_shared_alerts_are_as_before() -> None:
    plain = rules.red_rules()
    assert rules.OWN_THRESHOLDS not in plain
    # thresholds that come to the defaults are no thresholds of their own
    same = AlertThresholds(error_ratio=0.05, down_for=10.0, error_for=300.0)
    assert rules.red_rules(own=[rules.AlertTarget("shop", "shop", "web", same)]) == plain


def test_alert_targets_leave_out_services_without_thresholds() -> None:
    targets = rules.alert_targets("shop", "shop", {"web": OWN, "db": None})
    assert targets == [rules.AlertTarget("shop", "shop", "web", OWN)]
    files = rules.rule_files([], own=targets)
    assert sorted(files) == ["conveyor-backups.yml", "conveyor-host.yml", "conveyor-red.yml"]
    assert 'service="web"' in files["conveyor-red.yml"]
