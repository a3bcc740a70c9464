"""Logs on the worker's shared fleet (conftest.py; docs/logs.md, "On a fleet"): the project's
collector, as the agent starts it, follows every app host's engine through its SSH tunnel;
what a container of the project writes on h2 is stored labelled with h2, `--host` keeps one
host's lines, and `conveyor logs web` names the replica `web-1-2@h2`.

Cheap on purpose: no deploy (no HAProxy, no edge), one container started on each of two hosts
with the labels Conveyor gives a replica, which is all the collector goes by.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from conveyor.app import logs as logs_app
from conveyor.cli.logs import run_logs
from conveyor.host.process import wait_until
from conveyor.model.logs import LogQuery, LogRecord
from conveyor.runtime.protocol import LABEL_PROJECT, LABEL_RELEASE, LABEL_REPLICA, LABEL_SERVICE
from conveyor.testing.fleet_hosts import FleetHostError, TestFleet, TestHost
from tests.integration.fleet.support import IMAGE, Deployed, project_on

pytestmark = pytest.mark.integration

PROJECT = "fleetlogs"
# Three numbered lines, then quiet (a replica that keeps running).
SAY = """
import sys, time
for i in range(3):
    print(f"hello {i} from {sys.argv[1]}", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def deployed(shared_fleet: TestFleet) -> Iterator[Deployed]:
    with project_on(shared_fleet, PROJECT) as d:
        yield d


def _run_replica(host: TestHost, replica: str) -> str:
    """A container of the project on `host`'s engine, labelled as Conveyor labels a replica."""
    labels = {
        LABEL_PROJECT: PROJECT,
        LABEL_SERVICE: "web",
        LABEL_REPLICA: replica,
        LABEL_RELEASE: "1",
    }
    flags = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
    name = f"{PROJECT}-{replica}-{uuid.uuid4().hex[:6]}"
    host.exec("docker", "run", "-d", "--name", name, *flags, IMAGE, "python", "-c", SAY, host.name)
    return name


def test_a_replica_on_another_host_is_found_labelled_with_that_host(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    h1, h2 = deployed.fleet.hosts[0], deployed.fleet.hosts[1]
    project = deployed.project()
    said: list[str] = []
    started: list[tuple[TestHost, str]] = []
    collector = logs_app.start_collector(project, None, said.append)
    assert collector is not None, said
    path = logs_app.store_path(project)
    try:
        started += [(h1, _run_replica(h1, "web-1-1")), (h2, _run_replica(h2, "web-1-2"))]

        def web_lines() -> list[LogRecord]:
            return logs_app.search(path, LogQuery(services=("web",))) if path.exists() else []

        wait_until(lambda: len(web_lines()) >= 6, 120, 0.5)
        where = sorted((r.message, r.labels.host, r.labels.replica) for r in web_lines())
        assert where == sorted(
            [
                *[(f"hello {i} from {h1.name}", h1.name, "web-1-1") for i in range(3)],
                *[(f"hello {i} from {h2.name}", h2.name, "web-1-2") for i in range(3)],
            ]
        ), said
        on_h2 = logs_app.search(path, LogQuery(hosts=(h2.name,)))
        assert sorted(r.message for r in on_h2) == [f"hello {i} from {h2.name}" for i in range(3)]

        capsys.readouterr()
        run_logs(
            project, ["web"], grep=None, level=None, since=None, until=None, release=None,
            fields=[], replicas=[], streams=[], tail=100, follow=False, as_json=False,
            hosts=[h2.name],
        )  # fmt: skip
        shown = capsys.readouterr().out.splitlines()
        assert [line.split(" ", 2)[2] for line in shown] == [
            f"web-1-2@{h2.name} hello {i} from {h2.name}" for i in range(3)
        ]
    finally:
        collector.stop()
        for host, name in started:
            with contextlib.suppress(FleetHostError):  # else it goes with the host
                host.exec("docker", "rm", "-f", name, timeout=60)
