"""Service level objectives: x-conveyor.slo in compose.yaml, `slo:` per environment in
conveyor.yaml (replacing the compose file's for that service), and the value syntax."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.errors import SpecError
from conveyor.model.slo import LatencyObjective, ServiceSLO
from conveyor.model.stack import Service, Stack
from conveyor.spec import load_stack
from conveyor.spec.conveyor_file import load_conveyor_file, parse_conveyor
from conveyor.spec.overrides import apply_overrides
from conveyor.spec.slo import parse_objective, parse_threshold

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("written", "fraction"),
    [("99.9%", 0.999), ("99%", 0.99), (" 95 % ", 0.95), (0.995, 0.995), ("0.9", 0.9)],
)
def test_objectives_read_as_fractions(written: object, fraction: float) -> None:
    assert parse_objective(written) == fraction


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("100%", "below 100%"),
        (1, "reads as a fraction above 1"),
        (99.9, "write a percentage with its sign ('99.9%')"),
        ("0%", "above 0%"),
        ("high", "a percentage like '99.9%'"),
        (True, "a percentage like '99.9%'"),
    ],
)
def test_objectives_that_leave_no_budget_or_are_not_numbers_are_refused(
    written: object, said: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        parse_objective(written)


def test_a_threshold_is_a_positive_duration() -> None:
    assert parse_threshold("300ms") == pytest.approx(0.3)
    assert parse_threshold(2) == 2.0
    with pytest.raises(ValueError, match="above zero"):
        parse_threshold("0s")


def test_compose_x_conveyor_slo_reaches_the_service() -> None:
    stack = load_stack(HERE / "good" / "slo.yaml", environ={"SEARCH_THRESHOLD": "2s"})

    assert stack.services["web"].slo == ServiceSLO(
        availability=0.999, latency=LatencyObjective(threshold=0.3, objective=0.99)
    )
    assert stack.services["api"].slo == ServiceSLO(availability=0.995)
    assert stack.services["search"].slo == ServiceSLO(
        latency=LatencyObjective(threshold=2.0, objective=0.95)
    )
    assert ServiceSLO(availability=0.999).availability_budget == pytest.approx(0.001)


def test_conveyor_yaml_slo_per_environment() -> None:
    config = load_conveyor_file(HERE / "conveyor" / "good" / "slo.yaml")

    production = config.environments["production"].slo
    assert production["web"].latency == LatencyObjective(threshold=0.3, objective=0.99)
    assert production["api"] == ServiceSLO(availability=0.9995)
    assert config.environments["staging"].slo["web"].availability == 0.99


STACK = Stack(
    project="shop",
    file="/src/shop/compose.yaml",
    services={
        "web": Service(
            name="web",
            image="web",
            slo=ServiceSLO(
                availability=0.99, latency=LatencyObjective(threshold=1.0, objective=0.9)
            ),
        ),
        "db": Service(name="db", image="postgres:16"),
    },
)


def test_an_environment_slo_replaces_the_compose_one_for_its_service_only() -> None:
    text = (
        "environments:\n  production:\n    branch: production\n"
        "    slo:\n      web: {availability: 99.95%}\n      db: {availability: 99.9%}\n"
    )
    production = parse_conveyor(text).environments["production"]

    stack = apply_overrides(STACK, production)

    # replaced whole: the compose file's latency objective does not apply in production
    assert stack.services["web"].slo == ServiceSLO(availability=0.9995)
    assert stack.services["db"].slo == ServiceSLO(availability=0.999)
    staging = parse_conveyor("environments:\n  staging:\n    branch: main\n")
    assert apply_overrides(STACK, staging.environments["staging"]).services["web"].slo == (
        STACK.services["web"].slo
    )


def test_an_slo_for_a_service_the_compose_file_lacks_points_at_conveyor_yaml() -> None:
    text = (
        "environments:\n  production:\n    branch: production\n"
        "    slo:\n      wbe: {availability: 99.9%}\n"
    )
    production = parse_conveyor(text).environments["production"]

    with pytest.raises(SpecError) as caught:
        apply_overrides(STACK, production)

    assert str(caught.value) == (
        "conveyor.yaml:5: environments.production.slo.wbe: service 'wbe' is not in the "
        "compose file (did you mean 'web'?)"
    )
