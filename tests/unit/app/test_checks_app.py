"""app.checks: settings from the environment, what a downtime names, and the checks
controller over the real deploy engine (in-memory runtime and router) and a fake Nagios."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.app.checks import ChecksController, desired_objects, matching, settings_from
from conveyor.errors import ChecksError, EngineUnreachable, SettingError
from conveyor.gitops.notify import notification
from conveyor.model.checks import (
    CheckNotification,
    ChecksSettings,
    CheckStatus,
    NagiosObjects,
    RemoteHost,
)
from conveyor.observe.checks.nagios import Ensured, SpooledNotification
from tests.unit.gitops.engine_world import World


def test_settings_from_the_environment() -> None:
    assert settings_from({}) == ChecksSettings()
    base = ChecksSettings(attempts=5, disk_paths=("/data",))
    got = settings_from(
        {
            "CONVEYOR_CHECKS": "on",
            "CONVEYOR_CHECK_INTERVAL": "30s",
            "CONVEYOR_CHECK_RETRY_INTERVAL": "3",
        },
        base,
    )
    assert (got.enabled, got.interval, got.retry_interval, got.attempts) == (True, 30, 3, 5)
    assert got.disk_paths == ("/data",)  # what the environment does not name stays
    assert not settings_from({"CONVEYOR_CHECKS": "off"}).enabled
    assert not settings_from({"CONVEYOR_CHECKS": "0"}).enabled
    assert settings_from({"CONVEYOR_CHECK_ATTEMPTS": "1"}).attempts == 1


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CONVEYOR_CHECK_INTERVAL": "soon"}, "CONVEYOR_CHECK_INTERVAL: "),
        ({"CONVEYOR_CHECK_INTERVAL": "200ms"}, "at least 1s"),
        ({"CONVEYOR_CHECK_ATTEMPTS": "0"}, "CONVEYOR_CHECK_ATTEMPTS: a whole number"),
    ],
)
def test_bad_settings_name_their_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        settings_from(environ)


STATUSES = [
    CheckStatus(host="box", state="UP"),
    CheckStatus(host="box", check="web http 127.0.0.1:8080", service="web", state="OK"),
    CheckStatus(host="box", check="web haproxy backend", service="web", state="OK"),
    CheckStatus(host="box", check="db tcp 127.0.0.1:5432", service="db", state="OK"),
    CheckStatus(host="box", check="memory", state="OK"),
]


def test_a_downtime_names_a_check_a_service_or_a_host() -> None:
    assert [s.check for s in matching(STATUSES, "memory")] == ["memory"]
    assert [s.check for s in matching(STATUSES, "web")] == [
        "web http 127.0.0.1:8080",
        "web haproxy backend",
    ]
    assert [(s.host, s.check) for s in matching(STATUSES, "box")] == [("box", None)]
    assert matching(STATUSES, "nothing") == []


@dataclass
class FakeNagios:
    """Records what it is told; `alive` and `dead_pid` say how it is found."""

    alive: bool = False
    dead_pid: int | None = None
    configured: NagiosObjects | None = None
    calls: list[Ensured] = field(default_factory=list)
    spool: list[SpooledNotification] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    fail: str | None = None

    def ensure(self, objects: NagiosObjects) -> Ensured:
        if self.fail is not None:
            raise ChecksError(self.fail)
        how: Ensured = "unchanged"
        if not self.alive:
            how = "started"
        elif objects != self.configured:
            how = "reloaded"
        self.alive, self.dead_pid, self.configured = True, None, objects
        self.calls.append(how)
        return how

    def running(self) -> bool:
        return self.alive

    def pid(self) -> int | None:
        return 4242 if self.alive else None

    def recorded_pid(self) -> int | None:
        return 4242 if self.alive else self.dead_pid

    def spooled(self) -> list[SpooledNotification]:
        return [s for s in self.spool if s.file not in self.removed]

    def done(self, spooled: SpooledNotification) -> None:
        self.removed.append(spooled.file)


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    assert w.deploy("1").status == "succeeded"
    return w


def controller(
    world: World, nagios: FakeNagios, render_every: float = 0.0, **settings: object
) -> ChecksController:
    return ChecksController(
        world.engine,
        ChecksSettings(**settings),
        nagios,
        host="box",
        render_every=render_every,
    )


def kinds(world: World) -> list[str]:
    return [e.kind for e in world.events if e.kind.startswith("check")]


def test_nagios_is_started_with_the_releases_checks_then_left_alone(world: World) -> None:
    nagios = FakeNagios()
    c = controller(world, nagios)
    c.tick()
    assert nagios.configured is not None
    port = world.store.ports.frontend_ports()["web"]
    names = [check.name for check in nagios.configured.checks]
    assert f"web http 127.0.0.1:{port}" in names
    assert {"docker", "load", "memory", "disk /"} <= set(names)
    c.tick()
    assert nagios.calls == ["started", "unchanged"]
    assert kinds(world) == ["checks.started"]


def test_a_changed_release_reloads_nagios(world: World) -> None:
    nagios = FakeNagios()
    c = controller(world, nagios)
    c.tick()
    world.store.ports.set_frontend("web", 18555)  # what a new release's frontend would do
    c.tick()
    assert nagios.calls == ["started", "reloaded"]
    assert kinds(world) == ["checks.started", "checks.reloaded"]


def test_checks_are_rendered_every_few_seconds_and_at_once_when_nagios_died(
    world: World,
) -> None:
    nagios = FakeNagios()
    now = [100.0]
    c = controller(world, nagios, render_every=5.0)
    c.clock = lambda: now[0]
    c.tick()
    now[0] += 1
    c.tick()  # within 5 s: notifications only
    assert nagios.calls == ["started"]
    now[0] += 5
    c.tick()
    assert nagios.calls == ["started", "unchanged"]
    now[0] += 1
    nagios.alive, nagios.dead_pid = False, 77  # killed
    c.tick()
    assert nagios.calls == ["started", "unchanged", "started"]
    assert kinds(world) == ["checks.started", "checks.restarted"]


def test_a_nagios_that_died_is_started_again_and_reported(world: World) -> None:
    nagios = FakeNagios(dead_pid=3131)
    controller(world, nagios).tick()
    (restarted,) = [e for e in world.events if e.kind == "checks.restarted"]
    assert restarted.message == "Nagios (PID 3131) was not running; started again (PID 4242)"
    assert restarted.level == "warning"
    told = notification(restarted)
    assert told is not None and told.topic == "checks.restarted"


def spooled(name: str, **fields: object) -> SpooledNotification:
    n = CheckNotification.model_validate({"host": "box", "state": "CRITICAL", "ts": 1.0, **fields})
    return SpooledNotification(Path(name), n)


def test_notifications_become_events_and_leave_the_spool(world: World) -> None:
    nagios = FakeNagios(alive=True)
    nagios.spool = [
        spooled("1", type="PROBLEM", check="web http :1", service="web", output="refused"),
        spooled("2", type="FLAPPINGSTART", check="web http :1", service="web"),
        SpooledNotification(Path("3"), None, "3: not JSON"),
        spooled("4", type="RECOVERY", check="web http :1", service="web", state="OK"),
        spooled("5", type="PROBLEM", state="DOWN"),  # the host itself
        spooled("6", type="PROBLEM", host="h1", check="disk", kind="nrpe", state="WARNING"),
    ]
    assert controller(world, nagios).forward() == 5
    assert nagios.removed == [Path(n) for n in "123456"]
    events = [e for e in world.events if e.kind.startswith("check")]
    assert [(e.kind, e.subject.service, e.level) for e in events] == [
        ("check.changed", "web", "error"),
        ("check.note", "web", "info"),
        ("checks.error", None, "warning"),
        ("check.changed", "web", "info"),
        ("check.changed", None, "error"),
        ("check.changed", None, "warning"),
    ]
    assert events[0].message == "web http :1 is CRITICAL: refused"
    assert events[3].message.startswith("web http :1 is OK again")
    assert events[4].message.startswith("host box is DOWN")
    assert events[5].message.startswith("disk on h1 is WARNING")  # which host's disk
    assert events[0].id > 0  # recorded in the project's timeline
    topics = [n.topic if (n := notification(e)) else None for e in events]
    assert topics == [
        "check.problem",
        None,
        None,
        "check.recovered",
        "check.problem",
        "check.problem",
    ]


def test_an_error_is_reported_once_until_it_changes(world: World) -> None:
    nagios = FakeNagios(fail="Nagios rejected the configuration")
    c = controller(world, nagios)
    c.tick()
    c.tick()
    assert kinds(world) == ["checks.error"]
    nagios.fail = None
    c.tick()
    nagios.fail = "Nagios rejected the configuration"
    c.tick()
    assert kinds(world) == ["checks.error", "checks.started", "checks.error"]


def test_while_the_engine_is_away_the_checks_stay_and_notifications_still_flow(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    nagios = FakeNagios(alive=True)
    nagios.spool = [spooled("1", type="PROBLEM", check="docker", output="refused")]

    def away(*args: object) -> list[object]:
        raise EngineUnreachable("dockerd does not answer")

    monkeypatch.setattr(world.runtime, "list_networks", away)
    controller(world, nagios).tick()
    assert nagios.calls == []  # nothing re-rendered from a half-known world
    assert kinds(world) == ["check.changed"]


def test_checks_off_do_nothing(world: World) -> None:
    nagios = FakeNagios(spool=[spooled("1", type="PROBLEM", check="docker")])
    controller(world, nagios, enabled=False).tick()
    assert nagios.calls == [] and nagios.removed == []


def test_on_a_fleet_every_host_is_checked_through_nrpe_once(world: World, tmp_path: Path) -> None:
    """The controller's Nagios gets the fleet's hosts as remote hosts (the edge with its
    HAProxy), the written `checks.hosts` first and winning, and follows a fleet that changed."""
    from conveyor.model.fleet import Fleet, FleetHost
    from conveyor.model.provision import NRPE_PORT
    from conveyor.router.fleet import FleetRouter

    h1 = FleetHost(name="h1", address="10.1.0.11", roles=("edge",))
    h2 = FleetHost(name="h2", address="10.1.0.12")
    release = world.store.current_release()
    assert release is not None
    router = FleetRouter(Fleet(hosts=(h1, h2)), tmp_path / "fleet", release.stack, lambda: [])
    world.engine.router = router
    nagios = FakeNagios()
    written = RemoteHost(name="h2", address="192.0.2.2", nrpe_port=15666)
    c = controller(world, nagios, hosts=(written,))
    c.tick()
    assert nagios.configured is not None
    assert nagios.configured.settings.hosts == (
        written,
        RemoteHost(name="h1", address="10.1.0.11", nrpe_port=NRPE_PORT, edge=True),
    )
    names = [check.name for check in nagios.configured.checks]
    assert {"docker", "load", "memory", "disk /"} <= set(names)  # the controller's own
    h3 = FleetHost(name="h3", address="10.1.0.13")
    router.follow(Fleet(hosts=(h1, h2, h3)))
    c.tick()
    assert nagios.calls == ["started", "reloaded"]
    assert [h.name for h in nagios.configured.settings.hosts] == ["h2", "h1", "h3"]


def test_fleet_hosts_off_checks_only_the_written_hosts(world: World, tmp_path: Path) -> None:
    """`checks.fleet_hosts: false` (hosts not provisioned by Conveyor run no NRPE): only
    `checks.hosts` are remote hosts, the fleet's are not added."""
    from conveyor.model.fleet import Fleet, FleetHost
    from conveyor.router.fleet import FleetRouter

    h1 = FleetHost(name="h1", address="10.1.0.11", roles=("edge",))
    release = world.store.current_release()
    assert release is not None
    world.engine.router = FleetRouter(
        Fleet(hosts=(h1,)), tmp_path / "fleet", release.stack, lambda: []
    )
    written = RemoteHost(name="db1", address="192.0.2.2")
    settings = ChecksSettings(interval=1, retry_interval=1, hosts=(written,), fleet_hosts=False)
    objects = desired_objects(world.engine, settings, "vm")
    assert objects.settings.hosts == (written,)


def test_conveyor_up_reads_the_projects_conveyor_yaml_then_the_environment(tmp_path: Path) -> None:
    """`conveyor up` and its agent take conveyor.yaml's `checks:` (the environment still
    changes them); a bad value is an error naming the file's line."""
    from conveyor.app.checks import project_settings
    from conveyor.app.project import Project

    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: web}\n")
    (tmp_path / "conveyor.yaml").write_text("checks:\n  fleet_hosts: false\n  attempts: 5\n")
    project = Project.open(None, None, {"CONVEYOR_CHECK_ATTEMPTS": "2"}, tmp_path)
    settings = project_settings(project)
    assert (settings.fleet_hosts, settings.attempts) == (False, 2)
    (tmp_path / "conveyor.yaml").write_text("checks:\n  fleet_hosts: sometimes\n")
    with pytest.raises(SettingError, match=r"conveyor.yaml:2: checks.fleet_hosts"):
        project_settings(project)
