from __future__ import annotations

from conveyor.deploy.env import env_name, replica_env, replica_hosts
from conveyor.model.release import MAX_BACKOFF, HealBackoff
from conveyor.model.stack import Service


def test_replica_env_announces_frontends_and_port() -> None:
    svc = Service(name="gateway", image="x", environment={"APP_VERSION": "2", "PORT": "ignored"})
    env = replica_env(
        svc,
        project="shop",
        replica="gateway-1-1",
        release=1,
        port=23000,
        frontends={"catalog": 18001, "orders-api": 18002},
    )
    assert env["PORT"] == "23000"  # Conveyor's assignment wins over the file
    assert env["CATALOG_SERVICE_HOST"] == "127.0.0.1"
    assert env["ORDERS_API_SERVICE_PORT"] == "18002"
    assert env["APP_VERSION"] == "2"
    assert env["CONVEYOR_REPLICA"] == "gateway-1-1"
    assert replica_hosts({"catalog": 1}) == {"catalog": "127.0.0.1"}
    assert env_name("my-svc.v2") == "MY_SVC_V2"


def test_backoff_grows_while_a_service_keeps_crashing_and_resets_after() -> None:
    b = HealBackoff()
    delays = []
    for t in (0.0, 1.0, 3.0, 7.0, 15.0):
        b = b.after_heal(t)
        delays.append(b.delay)
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert b.not_before == 23.0  # blocked until then
    assert b.after_heal(100.0).delay == 0.0  # quiet for longer than the window: streak reset
    for t in range(200, 400, 5):
        b = b.after_heal(float(t))
    assert b.delay == MAX_BACKOFF
