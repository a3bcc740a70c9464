"""Infrastructure checks of a project (the Nagios role): Nagios configured from the serving
release and run beside the project, its state read back, its notifications turned into
timeline events (and so into the server's notification channels).

    ensure_checks(project)        `conveyor up`: configure and start (or reload) Nagios
    stop_checks(paths)            `conveyor down`, `up --no-checks`: stop it, forget its files
    checks_view(project)          `conveyor checks`
    checks_health(paths)          the line `conveyor status` shows
    schedule_downtime(...)        `conveyor checks downtime SERVICE --for 1h`
    ChecksController              hosted by the agent and by the server (see its docstring)

One Nagios per project, its files in the project's run directory (`ProjectPaths.run_dir`,
under /tmp: Nagios's user cannot enter the 0700 state directory). Settings come from
conveyor.yaml's `checks:` (the server's, or the project's for `conveyor up`), then the
environment: CONVEYOR_CHECKS=off turns checks off, CONVEYOR_CHECK_INTERVAL / _RETRY_INTERVAL /
_ATTEMPTS tune them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from conveyor.app.checks_views import ChecksView, DowntimeResult
from conveyor.app.project import Project
from conveyor.app.views import ChecksHealthView
from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import ChecksError, ConveyorError, EngineUnreachable, SettingError
from conveyor.host.process import wait_until
from conveyor.model.checks import CheckNotification, ChecksSettings, CheckStatus, NagiosObjects
from conveyor.model.events import Level
from conveyor.observe.checks.commands import schedule_downtime as downtime_command
from conveyor.observe.checks.nagios import Nagios, NagiosControl, default_layout
from conveyor.observe.checks.targets import address_ips, project_checks, through_edge
from conveyor.plan.fleet_checks import fleet_remote_hosts
from conveyor.plan.network import desired_networks
from conveyor.render.nagios import name_ok
from conveyor.spec.durations import parse_duration
from conveyor.store.db import Store

ENV_CHECKS = "CONVEYOR_CHECKS"
ENV_INTERVAL = "CONVEYOR_CHECK_INTERVAL"
ENV_RETRY = "CONVEYOR_CHECK_RETRY_INTERVAL"
ENV_ATTEMPTS = "CONVEYOR_CHECK_ATTEMPTS"
OFF = frozenset({"0", "off", "false", "no"})
TICK = 1.0  # seconds between two passes of the agent's checks controller (forwarding)
RENDER_EVERY = 5.0  # seconds between two renderings of the checks (and a Nagios found dead)
CONFIRM = 10.0  # seconds to wait for Nagios to list a downtime it was sent


def settings_from(environ: Mapping[str, str], base: ChecksSettings | None = None) -> ChecksSettings:
    """`base` (conveyor.yaml's, or the defaults) with what the environment changes. Raises
    SettingError naming the variable."""
    settings = base or ChecksSettings()
    changes: dict[str, object] = {}
    switch = environ.get(ENV_CHECKS, "").strip().lower()
    if switch:
        changes["enabled"] = switch not in OFF
    for name, key in ((ENV_INTERVAL, "interval"), (ENV_RETRY, "retry_interval")):
        if raw := environ.get(name, "").strip():
            try:
                seconds = parse_duration(raw)
            except ValueError as e:
                raise SettingError(f"{name}: {e}") from None
            if seconds < 1:
                raise SettingError(f"{name}: at least 1s (Nagios counts whole seconds), got {raw}")
            changes[key] = float(round(seconds))
    if raw := environ.get(ENV_ATTEMPTS, "").strip():
        if not raw.isdigit() or int(raw) < 1:
            raise SettingError(f"{ENV_ATTEMPTS}: a whole number of at least 1, got {raw!r}")
        changes["attempts"] = int(raw)
    return settings.model_copy(update=changes) if changes else settings


def project_settings(project: Project) -> ChecksSettings:
    """The checks of `conveyor up` and its agent: conveyor.yaml's `checks:` (when the file
    exists), with what the environment changes. Raises SettingError naming the file's line or
    the variable."""
    from conveyor.spec.fleet import load_fleet_file

    path, name = project.conveyor_file()
    try:
        base = load_fleet_file(path, name).checks
    except ConveyorError as e:
        raise SettingError(str(e)) from None
    return settings_from(project.environ, base)


def parse_for(text: str) -> float:
    """A downtime's length (`1h`, `30m`, `2h30m`): seconds. Raises ValueError."""
    seconds = parse_duration(text)
    if seconds < 1:
        raise ValueError(f"a downtime lasts at least 1s, got {text!r}")
    return seconds


def nagios_of(paths: ProjectPaths) -> Nagios:
    return Nagios(default_layout(paths.run_dir / "nagios"))


def this_host() -> str:
    """This machine's name, as Nagios's host (`localhost` when Nagios would refuse it)."""
    name = socket.gethostname().split(".")[0]
    return name if name and name_ok(name) else "localhost"


def desired_objects(engine: Engine, settings: ChecksSettings, host: str) -> NagiosObjects:
    """What Nagios checks for the project `engine` drives, as it serves now. Raises
    EngineUnreachable while the Docker Engine does not answer (its networks' subnets)."""
    from conveyor.router.fleet import FleetRouter

    store = engine.store
    release = store.current_release()
    addresses: dict[str, list[str]] = {}
    fleet = engine.router if isinstance(engine.router, FleetRouter) else None
    if fleet is not None:
        # The project's ports are the edge's; the rest is on the app hosts (through_edge).
        ports = store.ports.frontend_ports()
        routed = release.services if release is not None else {}
        hidden = fleet.public_host(assigned=True)
        assigned = {
            port: hidden
            for name, port in ports.items()
            if name in routed and routed[name].service.routing.public_port is None
        }
        checks = project_checks(release, ports, None, {}, settings)
        checks = through_edge(checks, fleet.public_host(), assigned)
        # The hosts' own disks, load, engines (and the edge's HAProxy): through their NRPE.
        if settings.fleet_hosts:
            hosts = fleet_remote_hosts(fleet.fleet, settings.hosts, host)
            settings = settings.model_copy(update={"hosts": hosts})
        return NagiosObjects(host=host, checks=checks, settings=settings)
    if release is not None:
        external = [n.docker_name for n in desired_networks(release.stack) if n.external]
        networks = engine.runtime.list_networks(engine.project, external)
        # Only networks Conveyor made have slot addresses (external ones: Docker places them).
        subnets = {n.docker_name: n.subnet for n in networks if n.spec_hash and n.subnet}
        addresses = address_ips(release.stack, store.address_slots.all(), subnets)
    checks = project_checks(
        release, store.ports.frontend_ports(), store.ports.stats_port(), addresses, settings
    )
    return NagiosObjects(host=host, checks=checks, settings=settings)


# ---- the controller ----------------------------------------------------------------------------

# How loud a forwarded notification is, by the state it reports.
_LEVELS: dict[str, Level] = {
    "CRITICAL": "error",
    "DOWN": "error",
    "UNREACHABLE": "error",
    "WARNING": "warning",
    "UNKNOWN": "warning",
}


@dataclass
class ChecksController:
    """Keeps one project's Nagios in step, each `tick`:

    - renders the checks of the release the project serves and `ensure`s Nagios with them:
      validated and reloaded when they changed, started when it does not run; a Nagios that
      died (its lock file names a dead PID) is started again and reported
      (`checks.restarted`, which people are told about);
    - forwards the notifications Nagios wrote to its spool as timeline events:
      `check.changed` for a PROBLEM or a RECOVERY (news), `check.note` for the rest
      (flapping, downtime, acknowledgement). Nagios held back those of a flapping check or
      of one in a downtime. A spooled notification is removed only once its event is recorded.

    Notifications are forwarded at every tick; the checks are rendered again every
    `render_every` seconds (a Docker API call and a few reads of the state database), and at
    once when Nagios is found not running. Errors are reported once each (`checks.error`), not
    at every tick."""

    engine: Engine
    settings: ChecksSettings = field(default_factory=ChecksSettings)
    nagios: NagiosControl | None = None
    host: str = field(default_factory=this_host)
    name: str = "checks"
    render_every: float = RENDER_EVERY
    clock: Callable[[], float] = time.monotonic
    _last_error: str | None = None
    _next_render: float = 0.0

    def __post_init__(self) -> None:
        if self.nagios is None:
            self.nagios = nagios_of(self.engine.paths)

    @property
    def _nagios(self) -> NagiosControl:
        assert self.nagios is not None
        return self.nagios

    def tick(self) -> None:
        if not self.settings.enabled:
            return
        now = self.clock()
        if now >= self._next_render or not self._nagios.running():
            self._next_render = now + self.render_every
            try:
                self._ensure()
            except EngineUnreachable:
                pass  # the release's networks are unknown for now: keep the checks Nagios runs
            except ConveyorError as e:
                self._error(str(e))
        self.forward()

    def _ensure(self) -> None:
        nagios = self._nagios
        objects = desired_objects(self.engine, self.settings, self.host)
        died = nagios.recorded_pid() if not nagios.running() else None
        how = nagios.ensure(objects)
        self._last_error = None
        timeline = self.engine.timeline
        count = len(objects.checks)
        if how == "started" and died is not None:
            timeline.emit(
                "checks.restarted",
                f"Nagios (PID {died}) was not running; started again (PID {nagios.pid()})",
                level="warning",
                data={"pid": nagios.pid(), "died": died},
            )
        elif how == "started":
            timeline.emit("checks.started", f"Nagios started with {count} checks")
        elif how == "reloaded":
            timeline.emit("checks.reloaded", f"Nagios reloaded: {count} checks")

    def _error(self, message: str) -> None:
        if message != self._last_error:
            self.engine.timeline.emit("checks.error", message, level="warning")
        self._last_error = message

    def forward(self) -> int:
        """Turn what Nagios notified into events; return how many."""
        count = 0
        for spooled in self._nagios.spooled():
            n = spooled.notification
            if n is None:
                self._error(f"unreadable notification in Nagios's spool: {spooled.problem}")
            else:
                emit_notification(self.engine, n)
                count += 1
            self._nagios.done(spooled)
        return count


def emit_notification(engine: Engine, n: CheckNotification) -> None:
    """One notification of Nagios as a timeline event (`check.changed` when it is news)."""
    what = n.subject
    if n.type == "PROBLEM":
        message = f"{what} is {n.state}: {n.output}"
    elif n.type == "RECOVERY":
        message = f"{what} is {n.state} again: {n.output}"
    else:
        message = f"{what}: {n.type.lower()} ({n.state})"
    level: Level = _LEVELS.get(n.state, "warning") if n.type == "PROBLEM" else "info"
    engine.timeline.emit(
        "check.changed" if n.news else "check.note",
        message,
        level=level,
        data=n.model_dump(mode="json"),
        service=n.service,
    )


def checks_controller(project: Project, engine: Engine) -> ChecksController:
    """The agent's checks controller for `project` (`project_settings`). A bad
    setting is reported (`checks.error`) and leaves the checks off: the agent heals anyway."""
    try:
        settings = project_settings(project)
    except SettingError as e:
        engine.timeline.emit("checks.error", f"checks are off: {e}", level="warning")
        settings = ChecksSettings(enabled=False)
    return ChecksController(engine, settings)


# ---- use cases ---------------------------------------------------------------------------------


def ensure_checks(project: Project, engine: Engine | None = None) -> str | None:
    """Configure and start (or reload) the project's Nagios as `conveyor up` leaves it; with
    checks off, stop it. Returns what went wrong (Nagios missing, a rejected configuration)
    without raising: the project serves whatever its monitoring does."""
    try:
        settings = project_settings(project)
    except SettingError as e:
        return str(e)
    if not settings.enabled:
        stop_checks(project.paths())
        return None
    engine = engine or project.engine()
    try:
        ChecksController(engine, settings)._ensure()
    except ConveyorError as e:
        return str(e)
    return None


def stop_checks(paths: ProjectPaths) -> bool:
    """Stop the project's Nagios (by its PID) and forget its configuration, so no agent
    starts it again; True when it ran."""
    nagios = nagios_of(paths)
    stopped = nagios.stop()
    nagios.forget()
    return stopped


def checks_health(paths: ProjectPaths) -> ChecksHealthView:
    nagios = nagios_of(paths)
    return ChecksHealthView.of(nagios.health(), nagios.configured(), str(nagios.layout.status_file))


def checks_view(project: Project) -> ChecksView:
    paths = project.paths()
    nagios = nagios_of(paths)
    status = nagios.status() if nagios.running() else None
    statuses = sorted(
        status.statuses if status else [],
        key=lambda s: (s.check is not None, s.host, s.check or ""),
    )
    return ChecksView(
        project=paths.project,
        nagios=checks_health(paths),
        checks=statuses,
        downtimes=status.downtimes if status else [],
    )


def matching(statuses: list[CheckStatus], target: str) -> list[CheckStatus]:
    """The checks `target` names: a check's name, every check of a Compose service, or a host
    (then the host itself)."""
    exact = [s for s in statuses if s.check == target]
    if exact:
        return exact
    of_service = [s for s in statuses if s.check is not None and s.service == target]
    if of_service:
        return of_service
    return [s for s in statuses if s.check is None and s.host == target]


def schedule_downtime(
    project: Project, target: str, seconds: float, author: str, comment: str
) -> DowntimeResult:
    """A downtime of `seconds` from now for the checks `target` names (see `matching`): Nagios
    sends no notification for them meanwhile. Raises ChecksError when Nagios does not run or
    nothing matches (the message lists what does)."""
    if seconds <= 0:
        raise ChecksError("a downtime lasts longer than 0s")
    paths = project.paths()
    nagios = nagios_of(paths)
    status = nagios.status() if nagios.running() else None
    if status is None:
        raise ChecksError(
            f"Nagios does not run for {paths.project}: `conveyor up` starts it (unless "
            f"--no-checks or {ENV_CHECKS}=off)"
        )
    chosen = matching(status.statuses, target)
    if not chosen:
        services = sorted({s.service for s in status.statuses if s.service})
        names = sorted(s.check for s in status.statuses if s.check)
        raise ChecksError(
            f"no check, service or host named {target!r}; services: {', '.join(services) or '-'}"
            f"; checks: {', '.join(names)}"
        )
    start = time.time()
    end = start + seconds
    for s in chosen:
        nagios.command(downtime_command(s.host, s.check, start, end, author, comment), start)
    wanted = {(s.host, s.check) for s in chosen}
    confirmed = wait_until(lambda: _listed(nagios, wanted, end), CONFIRM, 0.2)
    checks = [s.check for s in chosen if s.check is not None]
    store = Store.open(paths.state_dir)
    try:
        timeline = project.timeline(store)
        what = ", ".join(checks) if checks else f"host {chosen[0].host}"
        timeline.emit(
            "checks.downtime",
            f"downtime until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(end))} for "
            f"{what}: {comment}",
            data={"checks": checks, "host": chosen[0].host, "end": end, "author": author},
        )
    finally:
        store.close()
    return DowntimeResult(
        project=paths.project,
        host=chosen[0].host,
        checks=checks,
        start=start,
        end=end,
        confirmed=confirmed,
    )


def _listed(nagios: Nagios, wanted: set[tuple[str, str | None]], end: float) -> bool:
    """Whether Nagios's status file lists a downtime until `end` for each of `wanted`."""
    status = nagios.status()
    if status is None:
        return False
    have = {(d.host, d.check) for d in status.downtimes if d.end >= int(end) - 1}
    return wanted <= have
