"""Noticing HAProxy changes between heals (deploy.router_watch), on the fake router: a mark
ignores what changes all the time (sessions) and `changes` names each difference."""

from __future__ import annotations

from conveyor.deploy.router_watch import RouterMark, changes, router_mark
from conveyor.errors import RouterError
from conveyor.model.endpoint import Endpoint
from conveyor.model.routing import Frontend, RouterConfig, ServerEntry
from conveyor.testing.fakes import FakeRouter


def running(*names: str) -> FakeRouter:
    router = FakeRouter()
    router.ensure(RouterConfig(frontends=(Frontend(service="web", port=8080),)))
    for n, name in enumerate(names):
        router.add_server("web", ServerEntry(name=name, endpoint=Endpoint.loopback(20000 + n)))
    return router


def test_the_same_haproxy_gives_the_same_mark() -> None:
    router = running("web-2-1", "web-2-2")
    assert router_mark(router) == router_mark(router)
    assert router_mark(router).life == "running" and len(router_mark(router).servers) == 2


def test_each_change_is_named() -> None:
    router = running("web-2-1", "web-2-2", "web-2-3")
    before = router_mark(router)
    router.set_state("web", "web-2-1", "drain")
    router.set_weight("web", "web-2-2", 0)
    router.remove_server("web", "web-2-3")
    router.add_server("web", ServerEntry(name="web-2-4", endpoint=Endpoint.loopback(20009)))
    assert changes(before, router_mark(router)) == [
        "web-2-1 ready -> drain",
        "web-2-2 weight 100 -> 0",
        "web-2-3 deleted",
        "web-2-4 added",
    ]


def test_haproxy_stopped_or_not_answering_is_one_change() -> None:
    router = running("web-2-1")
    before = router_mark(router)
    router.stop()
    assert changes(before, router_mark(router)) == ["stopped"]

    class Broken(FakeRouter):
        def running(self) -> bool:
            raise RouterError("HAProxy socket /run/admin.sock: connection refused")

    assert router_mark(Broken()) == RouterMark("unreadable")
    assert changes(before, RouterMark("unreadable")) == ["not answering on its admin socket"]
