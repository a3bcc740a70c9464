"""One fleet of three test hosts per pytest worker, shared by every fleet module that runs on it
(docs/fleet.md, "Tests"): making hosts and copying the test image into their engines is most of
a fleet test's cost. Each module runs its own project (own name, ports, state directory) on
these hosts; a module that breaks a host (dockerd killed, link cut) restores it before it ends,
and `shared_fleet` checks every host answers before handing the fleet to the next module.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from conveyor.testing.fleet_hosts import TestFleet, fleet_of_hosts
from tests.integration.fleet.support import IMAGE


@pytest.fixture(scope="session")
def _worker_fleet() -> Iterator[TestFleet]:
    with fleet_of_hosts(3, prefix="cvfleet") as fleet:
        with ThreadPoolExecutor(len(fleet.hosts)) as pool:
            list(pool.map(lambda h: h.load_image(IMAGE), fleet.hosts))
        yield fleet


@pytest.fixture(scope="module")
def shared_fleet(_worker_fleet: TestFleet) -> TestFleet:
    """The worker's fleet, every host answering (an earlier module's fault undone)."""
    _worker_fleet.restore()
    return _worker_fleet
