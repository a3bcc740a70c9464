"""The thresholds of the service alerts: x-conveyor.alerts in compose.yaml, `alerts:` per
environment in conveyor.yaml (defaults where a service sets none), and the value syntax. The
bad/ corpora (alerts_*.yaml) hold the messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.model.alert_thresholds import THRESHOLD_KEYS, AlertThresholds
from conveyor.model.stack import Service, Stack
from conveyor.spec import load_stack
from conveyor.spec.alert_thresholds import parse_rate, parse_ratio, parse_wait
from conveyor.spec.conveyor_file import load_conveyor_file, parse_conveyor
from conveyor.spec.overrides import apply_overrides
from conveyor.spec.schema import X_CONVEYOR_SCHEMA

HERE = Path(__file__).parent


@pytest.mark.parametrize(("written", "ratio"), [("2%", 0.02), (0.1, 0.1), ("0.5", 0.5)])
def test_ratios_read_as_fractions(written: object, ratio: float) -> None:
    assert parse_ratio(written) == ratio


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("100%", "below 100%"),
        (0, "above 0%"),
        (5, "write a percentage with its sign ('5%') or a fraction (0.02)"),
        ("some", "a percentage like '2%' or a fraction like 0.02"),
    ],
)
def test_ratios_that_never_or_always_fire_are_refused(written: object, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        parse_ratio(written)


def test_rates_and_waits() -> None:
    assert parse_rate(0) == 0.0
    assert parse_rate("2.5") == 2.5
    with pytest.raises(ValueError, match="0 or more"):
        parse_rate(-0.1)
    assert parse_wait("1m30s") == 90.0
    assert parse_wait(0) == 0.0
    assert parse_wait("1.2345s") == 1.234  # Prometheus counts whole milliseconds
    with pytest.raises(ValueError, match="negative"):
        parse_wait("-1s")


def test_the_schema_and_the_model_know_the_same_keys() -> None:
    assert tuple(X_CONVEYOR_SCHEMA["properties"]["alerts"]["properties"]) == THRESHOLD_KEYS
    assert tuple(AlertThresholds.model_fields) == THRESHOLD_KEYS


def test_compose_x_conveyor_alerts_reach_the_service() -> None:
    stack = load_stack(HERE / "good" / "alerts.yaml", environ={"LATENCY_FOR": "20m"})

    assert stack.services["web"].alerts == AlertThresholds(
        error_ratio=0.02, latency=0.5, down_for=30.0
    )
    assert stack.services["api"].alerts == AlertThresholds(
        error_ratio=0.1, min_rate=1.0, error_for=120.0, latency_for=1200.0, replicas_for=0.0
    )
    assert stack.services["worker"].alerts is None  # `{}` sets nothing


def test_conveyor_yaml_alerts_per_environment() -> None:
    config = load_conveyor_file(HERE / "conveyor" / "good" / "alerts.yaml")

    assert config.environments["staging"].alerts == AlertThresholds(
        error_ratio=0.1, down_for=120.0, latency_for=1800.0
    )
    production = config.environments["production"].alerts
    assert production is not None
    assert production.given() == {
        "error_ratio": 0.01,
        "min_rate": 0.5,
        "latency": 0.75,
        "down_for": 10.0,
        "error_for": 180.0,
        "replicas_for": 90.0,
    }


STACK = Stack(
    project="shop",
    file="/src/shop/compose.yaml",
    services={
        "web": Service(
            name="web", image="web", alerts=AlertThresholds(error_ratio=0.02, down_for=30.0)
        ),
        "db": Service(name="db", image="postgres:16"),
    },
)


def test_environment_defaults_fill_what_a_service_leaves_unset() -> None:
    text = (
        "environments:\n  staging:\n    branch: main\n    alerts: {error_ratio: 10%, latency: 2s}\n"
    )
    staging = parse_conveyor(text).environments["staging"]

    stack = apply_overrides(STACK, staging)

    # the service's own value wins; the environment's fills the rest
    assert stack.services["web"].alerts == AlertThresholds(
        error_ratio=0.02, down_for=30.0, latency=2.0
    )
    assert stack.services["db"].alerts == AlertThresholds(error_ratio=0.1, latency=2.0)
    production = parse_conveyor("environments:\n  production:\n    branch: production\n")
    unchanged = apply_overrides(STACK, production.environments["production"])
    assert unchanged.services["web"].alerts == STACK.services["web"].alerts
    assert unchanged.services["db"].alerts is None
