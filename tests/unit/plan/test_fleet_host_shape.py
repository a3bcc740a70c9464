"""plan.fleet_routes.host_shape: one fleet host's HAProxy binds inside its own host's service
addresses and reaches every server at its own (fleet) endpoint."""

from __future__ import annotations

from conveyor.model.routing import Bind, Frontend, Listener, RouterConfig
from conveyor.plan.fleet_routes import host_shape
from conveyor.plan.routes import Namespace

CONFIG = RouterConfig(
    frontends=(
        Frontend(
            service="db",
            port=18432,
            mode="tcp",
            target=5432,
            binds=(Bind(port=5432, namespace="cv-p-db-aaaa", netns="/var/run/docker/netns/a1"),),
            listeners=(
                Listener(
                    port=5433,
                    binds=(
                        Bind(port=5433, namespace="cv-p-db-aaaa", netns="/var/run/docker/netns/a1"),
                        Bind(address="127.0.0.1", port=15433),
                    ),
                ),
            ),
        ),
        Frontend(service="web", port=18080, target=8000, binds=(Bind(port=8080),)),
    )
)


def test_binds_use_the_hosts_own_address_namespace() -> None:
    here = {"db": Namespace(name="cv-p-db-bbbb", netns="/var/run/docker/netns/b2")}
    shaped = host_shape(CONFIG, here)
    db, web = shaped.frontends
    assert db.binds == (
        Bind(port=5432, namespace="cv-p-db-bbbb", netns="/var/run/docker/netns/b2"),
    )
    assert db.listeners[0].binds == (
        Bind(port=5433, namespace="cv-p-db-bbbb", netns="/var/run/docker/netns/b2"),
        Bind(address="127.0.0.1", port=15433),
    )
    assert db.namespaces() == {"cv-p-db-bbbb": "/var/run/docker/netns/b2"}
    assert web.binds == (Bind(port=8080),)  # a published port: not in a namespace


def test_servers_are_reached_at_their_own_endpoint() -> None:
    # On a fleet every server is listed at its host's address and published port.
    assert {f.target for f in host_shape(CONFIG, {}).frontends} == {None}


def test_a_host_without_the_address_keeps_its_other_binds() -> None:
    db = host_shape(CONFIG, {}).frontends[0]
    assert db.binds == ()
    assert db.listeners[0].binds == (Bind(address="127.0.0.1", port=15433),)
    assert db.namespaces() == {}
