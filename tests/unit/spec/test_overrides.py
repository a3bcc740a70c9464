"""An environment's stack: conveyor.yaml's overrides applied to the compose file's Stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.stack import PortSpec, Routing, Service, Stack
from conveyor.spec import load_stack
from conveyor.spec.conveyor_file import parse_conveyor
from conveyor.spec.overrides import apply_overrides

STACK = Stack(
    project="shop",
    file="/src/shop/compose.yaml",
    services={
        "web": Service(
            name="web",
            image="shop-web",
            replicas=2,
            environment={"LOG_LEVEL": "info", "DB": "postgres://db/shop"},
            routing=Routing(port=8000, public_port=8080),
        ),
        "api": Service(name="api", image="shop-api", routing=Routing(port=9000, public_port=9090)),
        "db": Service(name="db", image="postgres:16"),
    },
)


def env(yaml_overrides: str, name: str = "staging") -> EnvironmentSpec:
    text = f"environments:\n  {name}:\n    branch: main\n    overrides:\n{yaml_overrides}"
    return parse_conveyor(text).environments[name]


def test_no_overrides_gives_the_same_services_under_the_environment_project() -> None:
    staging = parse_conveyor("environments:\n  staging:\n    branch: main\n").environments[
        "staging"
    ]

    stack = apply_overrides(STACK, staging)

    assert stack.project == "shop-staging"
    assert stack.services == STACK.services
    assert stack.file == STACK.file


def test_replicas_environment_and_published_ports_are_overridden() -> None:
    production = env(
        "      web:\n"
        "        replicas: 4\n"
        "        environment: {LOG_LEVEL: warning, SENTRY: 'on'}\n"
        "        ports: {'8080': 18080}\n",
        name="production",
    )

    stack = apply_overrides(STACK, production)

    web = stack.services["web"]
    assert stack.project == "shop-production"
    assert web.replicas == 4
    # The file's variables stay unless overridden; new ones are added.
    assert web.environment == {"LOG_LEVEL": "warning", "DB": "postgres://db/shop", "SENTRY": "on"}
    assert web.routing.public_port == 18080
    assert web.routing.port == 8000  # the app's own port does not move
    assert stack.services["api"] == STACK.services["api"]
    # The loaded stack is not changed (frozen models, a new stack).
    assert STACK.services["web"].replicas == 2


def test_an_override_of_a_service_the_file_lacks_points_at_conveyor_yaml() -> None:
    staging = env("      wbe:\n        replicas: 1\n")

    with pytest.raises(SpecError) as caught:
        apply_overrides(STACK, staging)

    assert str(caught.value) == (
        "conveyor.yaml:5: environments.staging.overrides.wbe: "
        "service 'wbe' is not in the compose file (did you mean 'web'?)"
    )


def test_a_port_the_service_does_not_publish_is_refused() -> None:
    staging = env(
        "      db:\n        ports: {'5432': 15432}\n      web:\n        ports:\n"
        "          '80': 8081\n"
    )

    with pytest.raises(SpecErrors) as caught:
        apply_overrides(STACK, staging)

    assert str(caught.value).splitlines() == [
        "conveyor.yaml:6: environments.staging.overrides.db.ports.5432: "
        "service 'db' does not publish port 5432 (it publishes none)",
        "conveyor.yaml:9: environments.staging.overrides.web.ports.80: "
        "service 'web' does not publish port 80 (it publishes 8080)",
    ]


def test_two_services_moved_onto_one_port_is_refused() -> None:
    staging = env("      web:\n        ports: {'8080': 9090}\n")

    with pytest.raises(SpecError) as caught:
        apply_overrides(STACK, staging)

    assert str(caught.value) == (
        "conveyor.yaml:5: environments.staging.overrides.web: services 'api' and 'web' would "
        "both publish port 9090 in this environment; remap one of them"
    )


def test_swapping_two_published_ports_is_fine() -> None:
    staging = env(
        "      web:\n        ports: {'8080': 9090}\n      api:\n        ports: {'9090': 8080}\n"
    )

    stack = apply_overrides(STACK, staging)

    assert stack.services["web"].routing.public_port == 9090
    assert stack.services["api"].routing.public_port == 8080


def test_every_ports_entry_publishing_a_remapped_port_moves() -> None:
    dns = Service(
        name="dns",
        image="dns",
        networking="project",
        ports=(
            PortSpec(target=53, published=5353, protocol="tcp"),
            PortSpec(target=53, published=5353, protocol="udp"),
            PortSpec(target=8053, published=8053),
            PortSpec(target=9153),  # not published: served by name only
        ),
    )
    stack = STACK.model_copy(update={"services": {**STACK.services, "dns": dns}})
    staging = env("      dns:\n        ports: {'5353': 15353}\n")

    moved = apply_overrides(stack, staging).services["dns"]

    assert [(p.target, p.published, p.protocol) for p in moved.ports] == [
        (53, 15353, "tcp"),
        (53, 15353, "udp"),
        (8053, 8053, "tcp"),
        (9153, None, "tcp"),
    ]


def test_a_loaded_compose_file_moves_its_published_port_in_routing_and_ports(
    tmp_path: Path,
) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: shop-web\n    ports: ['8080:8000']\n"
        "    x-conveyor:\n      probe: /health\n"
    )
    stack = load_stack(tmp_path / "compose.yaml", environ={})
    production = env("      web:\n        ports: {'8080': 18080}\n", name="production")

    web = apply_overrides(stack, production).services["web"]

    assert (web.routing.port, web.routing.public_port) == (8000, 18080)
    assert [(p.target, p.published) for p in web.ports] == [(8000, 18080)]
