"""The fleet's edge on this machine (router.fleet.LocalEdge, a real HAProxy) keeps what its
checks found about each app host across a reload (docs/fleet.md, "The edge"): the edge is
reloaded whenever app hosts come and go, and a fresh worker would otherwise start every host
up, sending requests to a dead one, and down at its first failed check, however many `fall`
says (HAProxy starts a server's health at `rise`): under load that left the edge with no
server, a burst of 503s."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.host.process import wait_until
from conveyor.model.edge import EdgeConfig, EdgePort, EdgeTarget
from conveyor.render.edge_haproxy import render_edge
from conveyor.router.fleet import LocalEdge
from conveyor.router.haproxy import send
from conveyor.testing.net import free_port
from tests.integration.router.conftest import Backend

pytestmark = pytest.mark.integration


@pytest.fixture
def edge(run_dir: Path) -> Iterator[LocalEdge]:
    local = LocalEdge(run_dir / "edge")
    yield local
    local.stop()


def _config(port: int, targets: dict[str, int], check_every: float) -> EdgeConfig:
    return EdgeConfig(
        ports=(
            EdgePort(
                service="web",
                port=port,
                address="127.0.0.1",
                mode="http",
                check_path="/health",
                targets=tuple(
                    EdgeTarget(host=h, address="127.0.0.1", port=p) for h, p in targets.items()
                ),
            ),
        ),
        check_interval=check_every,
    )


def _health(edge: LocalEdge) -> dict[str, tuple[int, int]]:
    """Host -> (operational state, check health) in the edge's worker answering now."""
    reply = send(edge.run_dir / "admin.sock", "show servers state", 5.0)
    rows = [line.split() for line in reply.splitlines()[1:] if line and line[0] != "#"]
    return {f[3]: (int(f[5]), int(f[12])) for f in rows}


def _worker(edge: LocalEdge) -> int | None:
    found = re.search(r"^Pid: (\d+)$", send(edge.run_dir / "admin.sock", "show info", 5.0), re.M)
    return int(found.group(1)) if found else None


def _stat(edge: LocalEdge, host: str) -> dict[str, str]:
    """`host`'s `show stat` row in the edge's worker answering now."""
    lines = send(edge.run_dir / "admin.sock", "show stat", 5.0).splitlines()
    names = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(names, line.split(","), strict=False)) for line in lines[1:] if line]
    return next(r for r in rows if r["svname"] == host and r["pxname"].startswith("be_"))


def test_after_a_reload_an_app_host_still_takes_fall_failed_checks_to_leave(
    edge: LocalEdge, start_backend: Callable[..., Backend]
) -> None:
    """h1 is up at full health; the edge is reloaded (checks every 30 s, so that nothing but
    the reload changes h1's health meanwhile), h1 dies, and the edge is reloaded again for a
    host that joins. The new worker starts h1 at full health, so its checks fail twice
    (`fall 2`) before it leaves; a fresh worker would have started it at `rise` health and
    dropped it at its first failed check."""
    live, joining = start_backend("h1"), start_backend("h3")
    port = free_port()
    edge.ensure(render_edge(_config(port, {"h1": live.port}, 0.1), edge.run_dir))
    # (operational state: 2 up, 0 down; check health: 0 .. rise 2 + fall 2 - 1)
    assert wait_until(lambda: _health(edge) == {"h1": (2, 3)}, 30, 0.05), _health(edge)
    first = _worker(edge)
    edge.ensure(render_edge(_config(port, {"h1": live.port}, 30.0), edge.run_dir))
    assert wait_until(lambda: _worker(edge) not in (None, first), 15, 0.05)
    # This worker's first check of h1 is at once (the only server); the next in 30 s.
    assert wait_until(lambda: _health(edge) == {"h1": (2, 3)}, 30, 0.05), _health(edge)
    second = _worker(edge)

    live.kill()
    hosts = {"h1": live.port, "h3": joining.port}
    edge.ensure(render_edge(_config(port, hosts, 30.0), edge.run_dir))
    assert wait_until(lambda: _worker(edge) not in (None, second), 15, 0.05)
    assert wait_until(lambda: _stat(edge, "h1")["status"] == "DOWN", 60, 0.05)
    # Failed checks counted while it was still up: both of `fall 2`.
    assert _stat(edge, "h1")["chkfail"] == "2", _stat(edge, "h1")
    assert _stat(edge, "h3")["status"].startswith("UP")  # new: up at once


def test_the_edge_says_which_published_ports_have_an_app_host_up(
    edge: LocalEdge, start_backend: Callable[..., Backend]
) -> None:
    """What FleetRouter waits on after putting a server in rotation (`LocalEdge.serving`):
    a port whose only app host fails its checks is not served; once a host answers, it is."""
    port, dead = free_port(), free_port()
    backend = f"be_web_{port}"
    edge.ensure(render_edge(_config(port, {"h2": dead}, 0.1), edge.run_dir))
    assert wait_until(lambda: _health(edge) == {"h2": (0, 0)}, 30, 0.05), _health(edge)
    assert edge.serving({backend, "be_other_1"}) == set()
    live = start_backend("h1")
    edge.ensure(render_edge(_config(port, {"h1": live.port, "h2": dead}, 0.1), edge.run_dir))
    assert wait_until(lambda: edge.serving({backend}) == {backend}, 30, 0.05)
