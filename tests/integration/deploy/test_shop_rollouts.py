"""The example application under the real conveyor command, dockerd and HAProxy.

The tests run in file order against one deployment (module fixture): each leaves the
project healthy for the next.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from typing import Any

from conveyor.testing.load import LoadGenerator
from tests.integration.deploy.conftest import Shop, set_env


def get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200, (path, resp.status)
        return json.loads(resp.read())
    finally:
        conn.close()


def frontend(shop: Shop, service: str) -> int:
    url = next(s["url"] for s in shop.status()["services"] if s["name"] == service)
    return int(url.rsplit(":", 1)[1])


def all_current(shop: Shop) -> bool:
    st = shop.status()
    return all(
        s["running_replicas"] == s["desired_replicas"]
        and len(s["replicas"]) == s["desired_replicas"]
        and all(
            r["current"] and r["running"] and r["router"] in ("ready", "absent")
            for r in s["replicas"]
        )
        for s in st["services"]
    )


def test_up_serves_through_haproxy(shop: Shop) -> None:
    products = get_json(shop.gateway_port, "/api/products")
    assert products, "the gateway returned no products from catalog"
    st = shop.status()
    assert st["release"] == 1
    assert st["agent"]["running"] and st["router"]["running"]
    for s in st["services"]:
        assert s["running_replicas"] == s["desired_replicas"] == len(s["replicas"]), s
        assert all(r["router"] == "ready" for r in s["replicas"]), s


def test_rolling_deploy_under_load_has_zero_failures(shop: Shop) -> None:
    shop.edit(lambda d: [set_env(d, n, APP_VERSION="2.0.0") for n in d["services"]])
    with LoadGenerator(shop.gateway_port, "/api/products", workers=4, max_seconds=240) as load:
        time.sleep(0.5)
        out = shop.conveyor("deploy")
        time.sleep(0.5)
    res = load.result
    assert res.requests > 100, res.summary()
    assert res.failures == 0, (res.summary(), res.errors, out.stderr)
    assert get_json(shop.gateway_port, "/version")["version"] == "2.0.0"
    assert get_json(frontend(shop, "catalog"), "/version")["version"] == "2.0.0"
    last = shop.history()["rollouts"][0]
    assert (last["kind"], last["status"], last["to_release"]) == ("deploy", "succeeded", 2)


def test_killed_replica_is_replaced_with_zero_failures(shop: Shop) -> None:
    before = {
        r["name"]: r
        for s in shop.status()["services"]
        if s["name"] == "catalog"
        for r in s["replicas"]
    }
    victim = sorted(before)[0]
    with LoadGenerator(shop.gateway_port, "/api/products", workers=4, max_seconds=120) as load:
        time.sleep(0.5)
        subprocess.run(
            ["docker", "kill", "-s", "KILL", f"{shop.project}-{victim}"],
            check=True,
            capture_output=True,
        )

        def replaced() -> bool:
            cat = next(s for s in shop.status()["services"] if s["name"] == "catalog")
            names = {r["name"] for r in cat["replicas"] if r["running"] and r["router"] == "ready"}
            return victim not in names and len(names) == 2

        shop.wait_for(replaced, timeout=60, what="the agent to replace the killed replica")
        time.sleep(0.5)
    res = load.result
    assert res.failures == 0, (res.summary(), res.errors)
    heals = [r for r in shop.history()["rollouts"] if r["kind"] == "heal"]
    assert heals and heals[0]["status"] == "succeeded"


def test_agent_restarts_a_killed_haproxy_with_every_replica(shop: Shop) -> None:
    from conveyor.deploy.project import ProjectPaths
    from conveyor.errors import RouterError
    from conveyor.router.haproxy import HAProxyRouter

    router = HAProxyRouter(ProjectPaths(shop.compose, shop.project).router_dir)
    before = {(s.backend, s.server) for s in router.servers()}
    pid = int(router.pid_file.read_text())
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        # Right after the kill the old master's worker may still answer, then reset what it
        # accepted as it exits: wait for the HAProxy the agent starts in its place.
        try:
            now = int(router.pid_file.read_text() or 0)
        except FileNotFoundError:  # between the old master's and the new one's
            return False
        return now != pid and router.running()

    shop.wait_for(restarted, timeout=30, what="the agent to restart HAProxy")

    # The new master may answer before its worker's admin socket listens (seen under load).
    def all_ready() -> bool:
        try:
            ready = {(s.backend, s.server) for s in router.servers() if s.admin_state == "ready"}
        except RouterError:
            return False
        return ready == before

    shop.wait_for(all_ready, timeout=30, what="every replica back in rotation")

    # The killed master's worker may still hold the port for a moment (it exits once it
    # notices its master is gone) and reset what it accepted: the shop answers again soon.
    def answers() -> bool:
        try:
            return bool(get_json(shop.gateway_port, "/api/products"))
        except (OSError, AssertionError):
            return False

    shop.wait_for(answers, timeout=15, what="the shop to answer through the new HAProxy")


def test_container_removed_behind_conveyors_back_is_replaced_and_unrouted(shop: Shop) -> None:
    from conveyor.deploy.project import ProjectPaths
    from conveyor.router.haproxy import HAProxyRouter

    router = HAProxyRouter(ProjectPaths(shop.compose, shop.project).router_dir)
    cat = next(s for s in shop.status()["services"] if s["name"] == "catalog")
    victim = sorted(cat["replicas"], key=lambda r: r["name"])[0]
    subprocess.run(["docker", "rm", "-f", victim["container"]], check=True, capture_output=True)

    def healed() -> bool:
        # The replacement may reuse the name, and on a project network the freed address too:
        # HAProxy's servers must be exactly the running replicas, none of them the victim.
        servers = {(s.server, str(s.endpoint)) for s in router.servers() if s.backend == "catalog"}
        live = [
            r
            for s in shop.status()["services"]
            if s["name"] == "catalog"
            for r in s["replicas"]
            if r["running"] and r["router"] == "ready"
        ]
        where = {(r["name"], f"{r['address']}:{r['port']}") for r in live}
        seen.append((servers, where))
        return (
            len(live) == 2
            and servers == where
            and victim["container"] not in {r["container"] for r in live}
        )

    seen: list[object] = []
    try:
        shop.wait_for(healed, timeout=60, what="a replacement, no server left for the removed one")
    except AssertionError as e:
        raise AssertionError(f"{e}; victim {victim['name']}; {seen[-1]}") from None


def test_release_failing_its_probe_is_rolled_back_with_zero_failures(shop: Shop) -> None:
    def bad(doc: dict[str, Any]) -> None:
        set_env(doc, "catalog", APP_VERSION="3.0.0", FAIL_HEALTH="1")
        xc = doc["services"]["catalog"]["x-conveyor"]
        xc["probe"] = {"path": "/health", "start_timeout": "4s"}

    shop.edit(bad)
    cat_port = frontend(shop, "catalog")
    with LoadGenerator(shop.gateway_port, "/api/products", workers=4, max_seconds=120) as load:
        time.sleep(0.5)
        out = shop.conveyor("deploy", check=False)
        time.sleep(0.5)
    assert out.returncode == 1, out.stderr
    assert "rolled back" in out.stderr
    res = load.result
    assert res.failures == 0, (res.summary(), res.errors, res.failed_at, out.stderr)
    assert get_json(cat_port, "/version")["version"] == "2.0.0"
    rollouts = shop.history()["rollouts"]
    assert rollouts[1]["kind"] == "deploy" and rollouts[1]["status"] == "rolled_back"
    assert rollouts[0]["kind"] == "rollback" and rollouts[0]["status"] == "succeeded"
    st = shop.status()
    assert st["release"] == 2
    cat = next(s for s in st["services"] if s["name"] == "catalog")
    assert len(cat["replicas"]) == 2 and all(r["current"] and r["running"] for r in cat["replicas"])

    # put the good spec back so later tests start healthy
    def good(doc: dict[str, Any]) -> None:
        doc["services"]["catalog"]["environment"].pop("FAIL_HEALTH")
        doc["services"]["catalog"]["environment"]["APP_VERSION"] = "2.0.0"
        doc["services"]["catalog"]["x-conveyor"]["probe"] = "/health"

    shop.edit(good)
    assert "nothing to deploy" in shop.conveyor("deploy").stderr


def test_conveyor_killed_mid_rollout_then_deploy_converges(shop: Shop) -> None:
    def slow(doc: dict[str, Any]) -> None:
        set_env(doc, "catalog", APP_VERSION="4.0.0")
        doc["services"]["catalog"]["deploy"]["update_config"]["delay"] = "2s"

    shop.edit(slow)
    seen = len(shop.journal())
    proc = shop.spawn("deploy")

    def routed_new() -> bool:
        return any(
            '"kind":"route"' in step and status == "done"
            for _, _, step, status in shop.journal()[seen:]
        )

    try:
        shop.wait_for(routed_new, timeout=120, what="the first new replica to be routed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    out = shop.conveyor("deploy")
    assert (
        "interrupted" in out.stderr
        or "nothing to deploy" in out.stderr
        or "succeeded" in out.stderr
    )

    shop.wait_for(lambda: all_current(shop), timeout=60, what="every replica on the new spec")
    st = shop.status()
    expected = sum(s["desired_replicas"] for s in st["services"])
    assert len(shop.replicas()) == expected, "orphaned containers were left behind"
    # one service address per service, nothing else
    assert len(shop.addresses()) == len(st["services"])
    assert len(shop.containers()) == expected + len(st["services"])
    assert get_json(frontend(shop, "catalog"), "/version")["version"] == "4.0.0"
    kinds = [(r["kind"], r["status"]) for r in shop.history()["rollouts"]]
    assert ("deploy", "interrupted") in kinds


def test_rollback_goes_back_to_the_previous_release_under_load(shop: Shop) -> None:
    before = shop.status()["release"]
    cat_port = frontend(shop, "catalog")
    assert get_json(cat_port, "/version")["version"] == "4.0.0"
    with LoadGenerator(shop.gateway_port, "/api/products", workers=4, max_seconds=120) as load:
        time.sleep(0.3)
        out = shop.conveyor("rollback")
        time.sleep(0.3)
    assert load.result.failures == 0, (load.result.summary(), load.result.errors)
    assert "rollback succeeded" in out.stderr
    assert get_json(cat_port, "/version")["version"] == "2.0.0"
    st = shop.status()
    assert st["release"] != before
    last = shop.history()["rollouts"][0]
    assert (last["kind"], last["status"]) == ("rollback", "succeeded")


def test_logs_of_every_running_replica_are_collected_with_their_names(shop: Shop) -> None:
    st = shop.status()
    catalog = next(s for s in st["services"] if s["name"] == "catalog")
    running = {r["name"] for r in catalog["replicas"] if r["running"]}
    get_json(shop.gateway_port, "/api/products")

    def collected() -> set[str]:
        # The agent collects into the project's log store: the current release's lines.
        out = shop.conveyor(
            "logs", "catalog", "--release", str(st["release"]), "--tail", "500", "--json"
        ).stdout
        records = [json.loads(line) for line in out.splitlines()]
        return {r["labels"]["replica"] for r in records} if records else set()

    shop.wait_for(lambda: collected() == running, what=f"lines of {sorted(running)}")
    out = shop.conveyor("logs", "catalog", "--grep", "path", "--tail", "5").stdout
    assert any(name in out for name in running), out  # printed with the replica's name


def test_down_keeps_named_volumes_and_history_and_up_restores(shop: Shop) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", shop.gateway_port, timeout=5)
    conn.request(
        "POST",
        "/api/orders",
        body=json.dumps({"product_id": "burr-grinder", "quantity": 1}),
        headers={"Content-Type": "application/json"},
    )
    assert conn.getresponse().status in (200, 201)
    conn.close()
    orders_before = get_json(shop.gateway_port, "/api/orders")
    rollouts_before = len(shop.history()["rollouts"])

    shop.conveyor("down")
    assert shop.containers() == []
    st = shop.status()
    assert not st["agent"]["running"] and not st["router"]["running"]
    vols = subprocess.run(
        ["docker", "volume", "ls", "-q"], capture_output=True, text=True, check=True
    ).stdout
    assert f"{shop.project}_orders-data" in vols.split()

    shop.conveyor("up")
    assert get_json(shop.gateway_port, "/api/orders") == orders_before
    assert len(shop.history()["rollouts"]) > rollouts_before
