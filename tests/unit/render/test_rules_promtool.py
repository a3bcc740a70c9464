"""The rendered rule files under Prometheus's own tools: every file passes `promtool check
rules` (duplicate rules fatal), and the `promtool test rules` files in promtool/ (input series
-> the alerts expected at given times, one file per alert family) pass against them. Both run
through `host.validate`, as Conveyor runs them before loading a file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.host.validate import check
from conveyor.model.alert_thresholds import AlertThresholds
from conveyor.model.slo import LatencyObjective, ServiceSLO
from conveyor.render import prometheus_rules as rules

HERE = Path(__file__).parent / "promtool"
TESTS = sorted(HERE.glob("*.test.yml"))

LATENCY = LatencyObjective(threshold=0.3, objective=0.99)
# What slo_burn.test.yml says it was rendered with.
TARGETS = [
    rules.SLOTarget("shop", "production", "web", ServiceSLO(availability=0.999, latency=LATENCY)),
    rules.SLOTarget("shop", "production", "api", ServiceSLO(availability=0.999)),
    rules.SLOTarget("shop", "production", "cart", ServiceSLO(availability=0.999)),
    rules.SLOTarget("shop", "production", "search", ServiceSLO(latency=LATENCY)),
]
# What thresholds.test.yml says it was rendered with.
OWN = [
    rules.AlertTarget(
        "shop", "production", "checkout", AlertThresholds(error_ratio=0.02, down_for=30.0)
    ),
    rules.AlertTarget("shop", "production", "search", AlertThresholds(error_ratio=0.1)),
]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool missing: scripts/install-host.sh installs Debian's prometheus")
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rule files in rules/, the test files beside it (they name rules/<file>)."""
    root = tmp_path_factory.mktemp("promtool")
    (root / "rules").mkdir()
    for name, text in rules.rule_files(TARGETS, own=OWN).items():
        (root / "rules" / name).write_text(text)
    for test in TESTS:
        shutil.copy(test, root / test.name)
    return root


def test_there_is_a_test_file_per_alert_family() -> None:
    assert [t.name for t in TESTS] == [
        "backups.test.yml",
        "errors_latency.test.yml",
        "host_disk.test.yml",
        "replicas_rollouts.test.yml",
        "service_down.test.yml",
        "slo_burn.test.yml",
        "thresholds.test.yml",
    ]


@pytest.mark.parametrize("test", TESTS, ids=lambda p: p.stem)
def test_promtool_test_rules(test: Path, rendered: Path, promtool: str) -> None:
    verdict = check(rules.TEST_RUNNER, rendered / test.name, cwd=rendered, program=promtool)
    assert verdict.ok, verdict.output


def test_every_rendered_file_passes_promtool_check_rules(rendered: Path, promtool: str) -> None:
    names = sorted(p.name for p in (rendered / "rules").iterdir())
    assert names == [
        "conveyor-backups.yml",
        "conveyor-host.yml",
        "conveyor-red.yml",
        "conveyor-slo-shop.yml",
    ]
    for name in names:
        verdict = check(rules.VALIDATOR, rendered / "rules" / name, program=promtool)
        assert verdict.ok, verdict.output


def test_slo_files_of_several_environments_and_odd_names_pass(
    tmp_path: Path, promtool: str
) -> None:
    both = ServiceSLO(availability=0.9995, latency=LatencyObjective(threshold=1.0, objective=0.9))
    targets = [
        rules.SLOTarget("shop-staging", "staging", "web.v2", both),
        rules.SLOTarget("shop-staging", "staging", "api_1", ServiceSLO(availability=0.95)),
        rules.SLOTarget("shop-production", "production", "web.v2", both),
    ]
    files = rules.rule_files(targets)
    assert sorted(files) == [
        "conveyor-backups.yml",
        "conveyor-host.yml",
        "conveyor-red.yml",
        "conveyor-slo-shop-production.yml",
        "conveyor-slo-shop-staging.yml",
    ]
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        verdict = check(rules.VALIDATOR, path, program=promtool)
        assert verdict.ok, verdict.output


def test_a_broken_rule_is_refused_with_promtools_reason(tmp_path: Path, promtool: str) -> None:
    text = rules.red_rules().replace("sum by (project", "sum by (project,, ", 1)
    path = tmp_path / "conveyor-red.yml"
    path.write_text(text)

    verdict = check(rules.VALIDATOR, path, program=promtool)

    assert not verdict.ok
    assert "service:haproxy_http_requests:rate5m" in verdict.output
    assert "parse error" in verdict.output
