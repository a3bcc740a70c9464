"""router.fleet: what the executor reads from the fleet's HAProxies is one view merged over
the hosts (a drain waits for every host's sessions; the most withdrawn state wins; checks say
up when any host reaches the replica), calls fan out to every host, and each project has its
own directory on the hosts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conveyor.errors import RouterError
from conveyor.model.endpoint import Endpoint
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.routing import Frontend, Listener, RouterConfig, ServerEntry, ServerStatus
from conveyor.model.stack import Stack
from conveyor.plan.edge import edge_config
from conveyor.router.fleet import EDGE_SERVES_WITHIN, FleetRouter
from conveyor.spec.compose import load_stack

FLEET = Fleet(
    hosts=(FleetHost(name="h1", address="10.0.0.1"), FleetHost(name="h2", address="10.0.0.2"))
)


def _status(server: str, admin: str, operational: str, sessions: int) -> ServerStatus:
    return ServerStatus(
        backend="web",
        server=server,
        endpoint=Endpoint(host="10.0.0.1", port=20001),
        admin_state=admin,
        operational=operational,
        sessions=sessions,
        weight=100,
    )


class FakeAPI:
    def __init__(self, name: str, statuses: list[ServerStatus], calls: list[tuple[str, Any]]):
        self.name, self.statuses, self.calls = name, statuses, calls

    def servers(self) -> list[ServerStatus]:
        return self.statuses

    def add_server(self, service: str, server: ServerEntry) -> None:
        if self.name == "h2" and server.name == "refused":
            raise RouterError("HAProxy refused it")
        self.calls.append((self.name, server.name))

    def set_state(self, service: str, server: str, state: str) -> None:
        self.calls.append((self.name, f"{server} {state}"))


def _router(
    tmp_path: Path, per_host: dict[str, list[ServerStatus]]
) -> tuple[FleetRouter, list[tuple[str, Any]]]:
    router = FleetRouter(
        FLEET,
        tmp_path / "fleet",
        Stack(project="shop", file="compose.yaml", services={}),
        lambda: FLEET.hosts,
    )
    calls: list[tuple[str, Any]] = []
    fakes = [SimpleNamespace(name=n, api=FakeAPI(n, s, calls)) for n, s in per_host.items()]
    router.live = lambda: fakes  # type: ignore[assignment,method-assign,return-value]
    return router, calls


def test_servers_are_merged_over_the_hosts(tmp_path: Path) -> None:
    router, _ = _router(
        tmp_path,
        {
            "h1": [_status("web-1-1", "ready", "up", 2), _status("web-1-2", "drain", "down", 1)],
            "h2": [_status("web-1-1", "ready", "down", 3), _status("web-1-2", "ready", "down", 0)],
        },
    )
    merged = {s.server: s for s in router.servers()}
    assert merged["web-1-1"].sessions == 5  # a drain waits for both hosts' sessions
    assert merged["web-1-1"].operational == "up"  # one host reaches it
    assert merged["web-1-2"].admin_state == "drain"  # the most withdrawn
    assert merged["web-1-2"].operational == "down"  # no host reaches it


def test_a_change_goes_to_every_host_and_a_refusal_names_the_host(tmp_path: Path) -> None:
    router, calls = _router(tmp_path, {"h1": [], "h2": []})
    router.add_server(
        "web", ServerEntry(name="web-1-1", endpoint=Endpoint(host="10.0.0.1", port=1))
    )
    assert sorted(calls) == [("h1", "web-1-1"), ("h2", "web-1-1")]
    with pytest.raises(RouterError, match=r"^h2: HAProxy refused it"):
        router.add_server(
            "web", ServerEntry(name="refused", endpoint=Endpoint(host="10.0.0.1", port=2))
        )
    # What was asked is recorded: a host that is up again gets it with the whole configuration.
    assert "web-1-1" in router._load_record()["web"]


def test_each_project_has_its_own_directory_on_the_hosts(tmp_path: Path) -> None:
    shop = FleetRouter(
        FLEET, tmp_path / "a", Stack(project="shop", file="compose.yaml", services={}), lambda: ()
    )
    blog = FleetRouter(
        FLEET, tmp_path / "b", Stack(project="blog", file="compose.yaml", services={}), lambda: ()
    )
    assert str(shop.app_dir) == "/run/conveyor/shop/haproxy"
    assert shop.app_dir != blog.app_dir and shop.edge_dir != blog.edge_dir
    assert shop.local_edge is not None  # no edge host: the edge runs on this machine


class FakeDrains:
    """A host's runtime API, as far as a push uses it: the drains given back."""

    def __init__(self) -> None:
        self.restored: list[dict[str, dict[str, ServerEntry]]] = []

    def restore_drains(self, record: dict[str, dict[str, ServerEntry]]) -> None:
        self.restored.append(record)


class FakeHost:
    """A host's HAProxy that is not running yet: the router pushes it the whole file."""

    socket_user = None  # logged in as root

    def __init__(self, name: str) -> None:
        self.name, self.texts, self.known = name, [], None
        self.kept: list[bool] = []  # keep_state of each push
        self.api = FakeDrains()
        self.host = FLEET.host(name)

    def running(self) -> bool:
        return False

    def shape(self) -> Any:
        return self.known

    def remember_shape(self, shape: Any) -> None:
        self.known = shape

    def push(self, text: str, links: Any = None, *, keep_state: bool = False) -> None:
        self.texts.append(text)
        self.kept.append(keep_state)


def _backend(text: str, name: str) -> list[str]:
    """The lines of section `backend <name>` of a rendered file."""
    lines = text.splitlines()
    start = lines.index(f"backend {name}") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return [line.strip() for line in lines[start:end]]


def test_every_port_of_a_replica_is_reached_at_its_published_port_on_every_host(
    tmp_path: Path,
) -> None:
    """db (5432, and an exporter on 9187) runs on h2: both hosts' HAProxies list it, in each
    port's backend, at h2's address and the host port its engine published that port on."""
    router = FleetRouter(
        FLEET,
        tmp_path / "fleet",
        Stack(project="shop", file="compose.yaml", services={}),
        lambda: FLEET.hosts,
    )
    fakes = {n: FakeHost(n) for n in ("h1", "h2")}
    router.hosts = fakes  # type: ignore[assignment]
    db = ServerEntry(
        name="db-1-1",
        endpoint=Endpoint(host="10.0.0.2", port=32801),
        ports={5432: 32801, 9187: 32802},
    )
    router.ensure(
        RouterConfig(
            frontends=(
                Frontend(
                    service="db",
                    port=18432,
                    mode="tcp",
                    target=5432,
                    listeners=(Listener(port=9187, mode="http"),),
                    servers=(db,),
                ),
            )
        )
    )
    for fake in fakes.values():
        [text] = fake.texts
        assert "server db-1-1 10.0.0.2:32801 check weight 100" in _backend(text, "be_db")
        assert "server db-1-1 10.0.0.2:32802 check weight 100" in _backend(text, "be_db_9187")
    # The record keeps the ports: a host pushed again later (back from down) gets them too.
    assert router._load_record()["db"]["db-1-1"].ports == {5432: 32801, 9187: 32802}


def test_with_the_aws_load_balancer_as_the_edge_none_is_run_here(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web: {image: web, ports: ['8080:8000'], x-conveyor: {port: 8000}}\n"
    )
    stack = load_stack(tmp_path / "compose.yaml", environ={})
    assert edge_config(stack, FLEET.hosts).ports  # an edge would have ports to serve
    router = FleetRouter(FLEET, tmp_path / "fleet", stack, lambda: FLEET.hosts, external_edge=True)
    assert router.local_edge is None and router.edges == []
    router.ensure_edge()  # published ports, hosts serving: still nothing to run or write
    assert not (tmp_path / "fleet" / "edge").exists()


def test_hosts_joining_and_leaving_get_and_lose_their_haproxy(tmp_path: Path) -> None:
    router = FleetRouter(
        FLEET,
        tmp_path / "fleet",
        Stack(project="shop", file="compose.yaml", services={}),
        lambda: (),
        external_edge=True,
    )
    h1 = router.hosts["h1"]
    h3 = FleetHost(name="h3", address="10.0.0.3")
    router.follow(Fleet(hosts=(FLEET.hosts[0], h3), hosts_from="aws"))
    assert sorted(router.hosts) == ["h1", "h3"]
    assert router.hosts["h1"] is h1  # kept as it was
    assert router.hosts["h3"].host == h3


class SlowEdge:
    """The edge on this machine, whose checks take `after` looks to find an app host up."""

    def __init__(self, after: int) -> None:
        self.after, self.asked = after, []  # type: list[set[str]]

    def running(self) -> bool:
        return True

    def serving(self, backends: set[str]) -> set[str]:
        self.asked.append(set(backends))
        return set(backends) if len(self.asked) > self.after else set()


def test_a_server_put_in_rotation_returns_once_the_edge_serves_its_ports(
    tmp_path: Path,
) -> None:
    """`up` configures the edge before any replica is routed, so the edge first marks every
    app host down: adding a ready server (or making one ready) waits until the edge has an
    app host up again for each port the service publishes; a drain does not wait."""
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web: {image: web, ports: ['8080:8000', '9090:9000'],"
        " x-conveyor: {port: 8000}}\n  db: {image: db, ports: ['15432:5432']}\n"
    )
    router, calls = _router(tmp_path, {"h1": [], "h2": []})
    router.stack = load_stack(tmp_path / "compose.yaml", environ={})
    router.hosts = {h.name: None for h in FLEET.hosts}  # type: ignore[misc]
    edge = SlowEdge(after=3)
    router.local_edge = edge  # type: ignore[assignment]
    server = ServerEntry(name="web-1-1", endpoint=Endpoint(host="10.0.0.1", port=20001))
    router.add_server("web", server)
    assert calls == [("h1", "web-1-1"), ("h2", "web-1-1")]
    assert len(edge.asked) == 4  # not serving three times, then serving
    assert edge.asked[-1] == {"be_web_8080", "be_web_9090"}  # web's ports only
    edge.asked.clear()
    router.add_server("web", server.model_copy(update={"state": "drain"}))
    assert edge.asked == []


def test_a_push_gives_drained_servers_their_weight_back_and_keeps_state_of_driven_hosts(
    tmp_path: Path,
) -> None:
    """The file renders a drained server at weight 0: after each push the host's drains are
    restored (weight and drain through the runtime API), or a later `set_state(ready)` would
    leave it at weight 0 there. A driven host's reload keeps its server state; a host back
    from down (`resync`) does not."""
    router = FleetRouter(
        FLEET,
        tmp_path / "fleet",
        Stack(project="shop", file="compose.yaml", services={}),
        lambda: FLEET.hosts,
        external_edge=True,
    )
    fakes = {n: FakeHost(n) for n in ("h1", "h2")}
    router.hosts = fakes  # type: ignore[assignment]
    old = ServerEntry(
        name="web-1-1", endpoint=Endpoint(host="10.0.0.1", port=20001), state="drain", weight=7
    )
    new = ServerEntry(name="web-2-1", endpoint=Endpoint(host="10.0.0.2", port=20002))
    router.ensure(
        RouterConfig(frontends=(Frontend(service="web", port=18080, servers=(old, new)),))
    )
    for fake in fakes.values():
        assert "server web-1-1 10.0.0.1:20001 check weight 0" in _backend(fake.texts[0], "be_web")
        assert fake.api.restored == [{"web": {"web-1-1": old, "web-2-1": new}}]
        assert fake.kept == [True]
    router.resync("h2")
    assert fakes["h2"].kept == [True, False]
    assert len(fakes["h2"].api.restored) == 2
    assert fakes["h1"].kept == [True]


class FakeEdgeHost:
    """An edge host's HAProxy, asked over SSH whether it serves (EdgeHost.serves)."""

    def __init__(self, name: str, reachable: bool = True) -> None:
        self.name, self.reachable, self.asked = name, reachable, []  # type: ignore[var-annotated]

    def push(self, text: str) -> str:
        return "direct"

    def serves(self, backends: set[str], within: float) -> str:
        self.asked.append((set(backends), within))
        if not self.reachable:
            raise RouterError(f"edge HAProxy on {self.name}: ssh: connect timed out")
        return "serving"


def test_a_server_put_in_rotation_waits_for_every_edge_host(tmp_path: Path) -> None:
    """With `edge` hosts, each is asked (on the host) to wait until it serves the service's
    ports; once all did, later routes do not ask again until the router changes their file.
    One out of reach does not fail the route (the server is in rotation already), and is
    asked again at the next route."""
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web: {image: web, ports: ['8080:8000'], x-conveyor: {port: 8000}}\n"
    )
    router, calls = _router(tmp_path, {"h1": [], "h2": []})
    router.stack = load_stack(tmp_path / "compose.yaml", environ={})
    router.hosts = {h.name: None for h in FLEET.hosts}  # type: ignore[misc]
    router.local_edge = None
    edges = [FakeEdgeHost("e1"), FakeEdgeHost("e2", reachable=False)]
    router.edges = edges  # type: ignore[assignment]
    server = ServerEntry(name="web-1-1", endpoint=Endpoint(host="10.0.0.1", port=20001))
    router.add_server("web", server)
    assert calls == [("h1", "web-1-1"), ("h2", "web-1-1")]
    for edge in edges:
        assert edge.asked == [({"be_web_8080"}, EDGE_SERVES_WITHIN)]
    router.add_server("web", server.model_copy(update={"state": "drain"}))
    assert [len(e.asked) for e in edges] == [1, 1]  # a drain does not wait
    router.set_state("web", "web-1-1", "ready")
    assert [len(e.asked) for e in edges] == [2, 2]  # e2 never said it serves
    edges[1].reachable = True
    router.set_state("web", "web-1-1", "ready")
    router.set_state("web", "web-1-1", "ready")
    assert [len(e.asked) for e in edges] == [3, 3]  # both served: not asked again
    router.ensure_edge()  # their file changes (FakeEdgeHost.push): asked again
    router.set_state("web", "web-1-1", "ready")
    assert [len(e.asked) for e in edges] == [4, 4]


def _bind_lines(text: str, section: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(section) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return [line.strip() for line in lines[start:end] if line.strip().startswith("bind ")]


def test_a_stable_frontend_port_is_bound_on_each_hosts_fleet_address_and_served_by_the_edge(
    tmp_path: Path,
) -> None:
    """web's x-conveyor.public_port (8080, no `ports:`) and api's port Conveyor assigned
    (21001): each app host binds them on 127.0.0.1 (as one host does) and on its fleet
    address, and the edge serves both over the hosts at that address and port."""
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  web: {image: web, x-conveyor: {port: 8000, probe: /health, public_port: 8080}}\n"
        "  api: {image: api, x-conveyor: {port: 8000, probe: /ready}}\n"
    )
    stack = load_stack(tmp_path / "compose.yaml", environ={})
    router = FleetRouter(FLEET, tmp_path / "fleet", stack, lambda: FLEET.hosts)
    fakes = {n: FakeHost(n) for n in ("h1", "h2")}
    router.hosts = fakes  # type: ignore[assignment]
    pushed: list[str] = []
    router.local_edge.ensure = pushed.append  # type: ignore[method-assign,union-attr]
    router.ensure(
        RouterConfig(
            frontends=(
                Frontend(service="web", port=8080, check_path="/health", target=8000),
                Frontend(service="api", port=21001, check_path="/ready", target=8000),
            )
        )
    )
    for name, address in (("h1", "10.0.0.1"), ("h2", "10.0.0.2")):
        [text] = fakes[name].texts
        assert _bind_lines(text, "frontend fe_web") == [
            "bind 127.0.0.1:8080",
            f"bind {address}:8080",
        ]
        assert _bind_lines(text, "frontend fe_api") == [
            "bind 127.0.0.1:21001",
            f"bind {address}:21001",
        ]
    [edge] = pushed
    assert _bind_lines(edge, "frontend fe_web_8080") == ["bind 127.0.0.1:8080"]
    assert _bind_lines(edge, "frontend fe_api_21001") == ["bind 127.0.0.1:21001"]
    assert _backend(edge, "be_web_8080")[-2:] == [
        "server h1 10.0.0.1:8080",
        "server h2 10.0.0.2:8080",
    ]
    assert "option httpchk GET /ready" in _backend(edge, "be_api_21001")
    assert router.public_host() == "127.0.0.1"


def test_where_users_reach_the_ports_is_the_edge(tmp_path: Path) -> None:
    stack = Stack(project="shop", file="compose.yaml", services={})
    local = FleetRouter(FLEET, tmp_path / "a", stack, lambda: (), edge_address="0.0.0.0")
    assert local.public_host() == "127.0.0.1"  # listening everywhere: this machine's loopback
    assert local.public_host(assigned=True) == "127.0.0.1"
    named = FleetRouter(FLEET, tmp_path / "b", stack, lambda: (), edge_address="10.0.0.9")
    assert named.public_host() == "10.0.0.9"
    with_edge = Fleet(
        hosts=(*FLEET.hosts, FleetHost(name="e1", address="10.0.1.1", roles=("edge",)))
    )
    hosts = FleetRouter(with_edge, tmp_path / "c", stack, lambda: ())
    assert hosts.public_host() == "10.0.1.1"
    # A port Conveyor assigned is on the edge host's own loopback only.
    assert hosts.public_host(assigned=True) is None
    alb = FleetRouter(FLEET, tmp_path / "d", stack, lambda: (), external_edge=True)
    assert alb.public_host() is None
