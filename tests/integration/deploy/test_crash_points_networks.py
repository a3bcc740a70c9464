"""Crash safety of the network and service-address steps, on the real dockerd and HAProxy
(see test_crash_points.py for the failpoints): a command SIGKILLed while it creates a project
network, starts or replaces a service address, rebinds HAProxy in an address's namespace, or
removes them at `down`, is repaired by the next command. Every network here is internal."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.router.haproxy import NETNS_DIR, HAProxyRouter
from tests.integration.deploy.crash_sample import sample
from tests.integration.deploy.test_crash_points import GOOD_PROBE, Phase, Stack

NET_STACK = """\
services:
  web:
    image: {image}
    command: ["sh", "-c", "exec python3 -m http.server $$PORT --bind $$HOST"]
    environment: {{V: "{version}"}}
    deploy:
      replicas: 2
      update_config: {{order: start-first, parallelism: 1}}
    stop_grace_period: 1s
    x-conveyor: {{port: 8000, probe: {probe}, public_port: {web_port}}}
  api:
    image: {image}
    command: ["sh", "-c", "exec python3 -m http.server $$PORT --bind $$HOST"]
    depends_on: [web]
    stop_grace_period: 1s
    x-conveyor: {{port: 8000, probe: /, public_port: {api_port}}}
networks:
  default:
    internal: true
"""

# What a fresh `up` does first, before any replica (addresses in dependency order): the steps
# the crashes below land in.
UP_STEPS = ("network default", "address web", "address api", "frontends")


class NetStack(Stack):
    template = NET_STACK
    addresses = 2

    def docker_json(self, *args: str) -> Any:
        out = subprocess.run(
            ["docker", *args], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        return json.loads(out)

    def assert_networked(self) -> None:
        """One internal network; one running address per service, HAProxy answering inside
        each (from the host, at the address's IP); the namespace links HAProxy binds through."""
        nets = subprocess.run(
            ["docker", "network", "ls", "-q", "--filter", f"label=io.conveyor.project={self.name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert len(nets) == 1, nets
        router = HAProxyRouter(self.paths.router_dir)
        shape = router.shape()
        assert shape is not None
        links = {n for f in shape.frontends for n in f.namespaces()}
        assert len(links) == 2 and all((NETNS_DIR / n).is_symlink() for n in links), links
        for service in ("web", "api"):
            (info,) = self.docker_json("inspect", f"{self.name}-{service}-address")
            assert info["State"]["Running"], info["State"]
            (network,) = info["NetworkSettings"]["Networks"].values()
            url = f"http://{network['IPAddress']}:8000/"
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.status == 200

    def wipe(self) -> None:
        """Back to nothing: the next test's `up` starts from scratch."""
        self.run("down", check=False)
        left = self.containers()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
        shutil.rmtree(self.paths.state_dir, ignore_errors=True)


@pytest.fixture
def net(tmp_path: Path, base_image: str) -> Iterator[NetStack]:
    s = NetStack(tmp_path)
    s.write("0")
    try:
        yield s
    finally:
        s.wipe()
        assert s.containers() == [], "containers left after down"


def _up_crash(k: int, phase: Phase) -> str:
    return f"{k}-{UP_STEPS[k - 1].replace(' ', '-')}-{phase}"


@pytest.mark.parametrize(
    ("k", "phase"),
    sample(
        "up-network",
        [
            pytest.param(k, phase, id=_up_crash(k, phase))
            for k in range(1, len(UP_STEPS) + 1)
            for phase in ("begun", "acted")
        ],
        # an address made but no frontend; addresses made, frontends not bound
        core=["2-address-web-acted", "4-frontends-begun"],
        rotate=1,
    ),
)
def test_up_killed_at_a_network_step_is_repaired_by_the_next_up(
    net: NetStack, k: int, phase: Phase
) -> None:
    # the store must exist for the failpoint to read the journal
    net.run("down", check=False)
    plan = [s["description"] for s in net.json("plan")["steps"]][: len(UP_STEPS)]
    assert [d.split(":")[0] for d in plan] == ["network default", "web", "api", "router"], plan
    crash = net.crash(("up", "--no-agent"), "up", k, phase)

    again = net.run("up", "--no-agent", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    net.assert_repaired(crash, "0")
    net.assert_networked()


def test_up_killed_between_creating_and_starting_an_address(net: NetStack) -> None:
    net.run("down", check=False)
    crash = net.crash_inside(("up", "--no-agent"), "address", "")
    again = net.run("up", "--no-agent", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    net.assert_repaired(crash, "0")
    net.assert_networked()


@pytest.mark.parametrize(
    ("k", "phase"),
    sample(
        "repair-address",
        [
            pytest.param(k, phase, id=f"{step}-{phase}")
            for k, step in ((1, "address"), (2, "frontends"))
            for phase in ("begun", "acted")
        ],
        core=["frontends-begun"],  # a new address, HAProxy not yet rebound into it
        rotate=1,
    ),
)
def test_repair_of_a_killed_address_killed_in_turn(net: NetStack, k: int, phase: Phase) -> None:
    """A service address died; the command replacing it (then rebinding HAProxy in the new
    namespace) is killed; the next command finishes the job."""
    net.run("up", "--no-agent")
    subprocess.run(["docker", "kill", f"{net.name}-web-address"], check=True, capture_output=True)
    crash = net.crash(("deploy",), "deploy", k, phase)
    assert crash.journal[0][1] == "address web", crash.where()

    again = net.run("deploy", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    net.assert_repaired(crash, "0")
    net.assert_networked()


@pytest.mark.parametrize(
    ("last", "phase"),
    sample(
        "down-network",
        [
            pytest.param(last, phase, id=f"{step}-{phase}")
            for last, step in ((2, "unaddress"), (1, "unnetwork"))
            for phase in ("begun", "acted")
        ],
        core=[],
        rotate=1,
    ),
)
def test_down_killed_while_removing_addresses_and_networks(
    net: NetStack, last: int, phase: Phase
) -> None:
    net.run("up", "--no-agent")
    down_steps = 3 * 3 + 2 + 1  # drain, unroute, stop per replica; two addresses; one network
    crash = net.crash(("down",), "down", down_steps - last + 1, phase)
    assert crash.journal[-1][1].startswith("unaddress" if last == 2 else "unnetwork")

    again = net.run("down", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    assert net.containers() == []
    nets = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"label=io.conveyor.project={net.name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert nets == []
    assert not HAProxyRouter(net.paths.router_dir).running()


def test_plan_of_the_network_stack_starts_with_networks_and_addresses(net: NetStack) -> None:
    net.write("0", probe=GOOD_PROBE)
    steps = [s["kind"] for s in net.json("plan")["steps"]]
    assert steps[:4] == ["network", "address", "address", "frontends"], steps
