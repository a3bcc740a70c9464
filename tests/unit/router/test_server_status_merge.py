"""A server of a service with several ports is in one HAProxy backend per port: its status
says what was changed on any of them (router.haproxy._with_further)."""

from __future__ import annotations

from conveyor.model.endpoint import Endpoint
from conveyor.router.haproxy import _with_further
from conveyor.router.protocol import ServerStatus

MAIN = ServerStatus(
    backend="db",
    server="db-1-1",
    endpoint=Endpoint(host="10.0.0.2", port=5432),
    admin_state="ready",
    operational="up",
    sessions=2,
)


def test_the_other_ports_add_their_sessions_only_when_nothing_changed() -> None:
    got = _with_further(MAIN, [(3, "ready", 100), (0, "ready", 100)])
    assert got == MAIN.model_copy(update={"sessions": 5})


def test_the_most_withdrawn_state_and_a_changed_weight_of_another_port_are_seen() -> None:
    got = _with_further(MAIN, [(0, "drain", 100), (0, "maint", 100), (0, "ready", 7)])
    assert (got.admin_state, got.weight) == ("maint", 7)
    main_changed = MAIN.model_copy(update={"admin_state": "maint", "weight": 0})
    assert _with_further(main_changed, [(0, "drain", 0)]) == main_changed
