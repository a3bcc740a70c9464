"""Project networks and service addresses, planned: subnet pool, attachments, addresses."""

from __future__ import annotations

import pytest

from conveyor.errors import SettingError
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import (
    ExposedPort,
    Network,
    PortSpec,
    Routing,
    Service,
    ServiceNetwork,
    Stack,
    UpdateConfig,
)
from conveyor.plan.network import (
    SubnetPool,
    attachments,
    desired_address,
    desired_networks,
    namespace_name,
)
from conveyor.plan.rollout import desired_services


def test_pool_defaults_and_candidates_skip_what_is_used() -> None:
    pool = SubnetPool.parse(None)
    assert pool == SubnetPool(ranges=("10.213.0.0/16",), prefix=24)
    # a Docker network and a host route inside the pool, one outside it
    used = ["10.213.0.0/24", "10.213.1.128/25", "192.0.2.0/24"]
    first = [c for _, c in zip(range(2), pool.candidates(used), strict=False)]
    assert first == ["10.213.2.0/24", "10.213.3.0/24"]


def test_pool_with_several_ranges_and_prefix() -> None:
    pool = SubnetPool.parse("10.50.0.0/28, 172.30.0.0/27", "28")
    assert list(pool.candidates(["10.50.0.0/28"])) == ["172.30.0.0/28", "172.30.0.16/28"]


@pytest.mark.parametrize(
    ("ranges", "prefix", "message"),
    [
        ("8.8.0.0/16", None, "not a private range"),
        ("127.0.0.0/8", None, "not a private range"),
        ("10.0.0.0/25", None, "smaller than one /24 network"),
        ("10.0.0/16", None, "not an IPv4 range"),
        (None, "8", "between 16 and 29"),
        (None, "wide", "expected a prefix length"),
    ],
)
def test_pool_refuses_unsafe_or_malformed_settings(
    ranges: str | None, prefix: str | None, message: str
) -> None:
    with pytest.raises(SettingError, match=message):
        SubnetPool.parse(ranges, prefix)


def _stack() -> Stack:
    on = {"default": ServiceNetwork(), "backend": ServiceNetwork(aliases=("postgres",))}
    return Stack(
        project="p",
        file="/c.yaml",
        services={
            "db": Service(
                name="db", networking="project", networks=on, expose=(ExposedPort(port=5432),)
            ),
            "worker": Service(name="worker", networking="project", networks=on),
            "legacy": Service(name="legacy", routing=Routing(port=8000)),
        },
        networks={
            "default": Network(name="default"),
            "backend": Network(name="backend", internal=True, docker_name="shared-backend"),
        },
    )


def test_desired_networks_use_compose_names_unless_the_file_names_one() -> None:
    nets = {n.name: n for n in desired_networks(_stack())}
    assert nets["default"].docker_name == "p_default"
    assert nets["backend"].docker_name == "shared-backend"
    assert nets["backend"].internal
    # the hash follows what Docker cannot change in place
    assert nets["default"].spec_hash != nets["backend"].spec_hash


def test_routed_service_name_goes_to_its_address_not_its_replicas() -> None:
    stack = _stack()
    address = desired_address(stack, "db")
    assert address is not None
    assert address.networks == {"p_default": ("db",), "shared-backend": ("db", "postgres")}
    assert attachments(stack, stack.services["db"]) == {"p_default": (), "shared-backend": ()}


def test_service_without_ports_is_found_by_name_on_its_replicas() -> None:
    stack = _stack()
    assert desired_address(stack, "worker") is None
    assert attachments(stack, stack.services["worker"]) == {
        "p_default": ("worker",),
        "shared-backend": ("worker", "postgres"),
    }


def test_host_networking_has_no_address() -> None:
    assert desired_address(_stack(), "legacy") is None


def test_namespace_name_changes_with_the_address_container() -> None:
    a = namespace_name("shop", "catalog", "0123456789abcdef")
    b = namespace_name("shop", "catalog", "fedcba9876543210")
    assert a == "cv-shop-catalog-0123456789ab"
    assert a != b
    assert namespace_name("a b", "c/d", "x") == "cv-a_b-c_d-x"


def test_single_replica_udp_service_updates_stop_first() -> None:
    svc = Service(
        name="dns",
        image="dns",
        networking="project",
        networks={"default": ServiceNetwork()},
        ports=(PortSpec(target=53, published=5353, protocol="udp"),),
        update_config=UpdateConfig(order="start-first"),
    )
    stack = Stack(project="p", file="/c.yaml", services={"dns": svc})
    release = Release(
        number=1,
        project="p",
        services={"dns": ServiceRelease(service=svc, image_id="sha256:1", image_ref="dns")},
        stack=stack,
    )
    (d,) = desired_services(release)
    assert d.update.order == "stop-first"
