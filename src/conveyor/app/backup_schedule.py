"""The server's backup schedules (conveyor.yaml `backups.schedules`, docs/backups.md).

`BackupScheduler.tick()` runs on the server's loop once a minute: for each schedule of an
environment the server has deployed, it backs up when due (plan.backup.next_due), and tells
the metrics what each covered service expects (interval, since when watched, the last
success) so the ConveyorBackupMissed alert fires when a schedule is missed, whatever the
reason (the server down aside: then its metrics are gone, and Prometheus's own `up` alerts).

Last runs are kept in memory and seeded from the bucket at the first look: a restarted
server finds the newest backup of each service and does not back up again at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from conveyor.app.backup import BackupTarget, create, list_backups
from conveyor.app.project import Project
from conveyor.errors import ConveyorError
from conveyor.model.backup import BackupOutcome, BackupSchedule, BackupsConfig, StoredBackup
from conveyor.model.environments import ConveyorConfig
from conveyor.plan.backup import BackupPlanError, interval, next_due, plan_backups

# (project, environment, service, interval, since, last success)
ScheduleGauge = Callable[[str, str, str, float, float, float | None], None]
TICK = 60.0  # seconds between two looks (a schedule's `every` is at least a minute)


@dataclass
class _State:
    since: float
    last_run: float | None = None
    seeded: bool = False
    successes: dict[str, float] = field(default_factory=dict)  # service -> newest success


@dataclass
class BackupScheduler:
    config: Callable[[], ConveyorConfig | None]  # the server's conveyor.yaml, as last fetched
    project_of: Callable[[str], Project | None]  # an environment's deployed project, or None
    environ: Mapping[str, str]
    gauge: ScheduleGauge | None = None
    clock: Callable[[], float] = time.time
    # seams for the tests: what backs up and what lists the bucket
    backup: Callable[[BackupTarget, list[str]], list[BackupOutcome]] = create
    stored: Callable[[BackupTarget], list[StoredBackup]] = list_backups
    name: str = "backups"
    _states: dict[str, _State] = field(default_factory=dict)

    def run(self, stopping: threading.Event, on_error: Callable[[str], None]) -> None:
        """Tick every TICK seconds until `stopping` is set (the server's thread)."""
        while not stopping.wait(TICK):
            try:
                self.tick()
            except Exception as e:  # a bug must not end the schedules: say it, go on
                on_error(f"{type(e).__name__}: {e}")

    def tick(self) -> list[BackupOutcome]:
        """Run what is due; the outcomes of this tick's backups."""
        config = self.config()
        if config is None or not config.backups.schedules:
            return []
        done: list[BackupOutcome] = []
        for schedule in config.backups.schedules:
            try:
                done += self._one(config.backups, schedule)
            except ConveyorError:
                # Reported as backup.failed events where a backup ran; a missing bucket or
                # key keeps the schedule's services unbacked: the missed alert says so.
                continue
        return done

    def _one(self, settings: BackupsConfig, schedule: BackupSchedule) -> list[BackupOutcome]:
        now = self.clock()
        state = self._states.setdefault(schedule.name, _State(since=now))
        project = self.project_of(schedule.environment)
        if project is None:
            return []  # nothing deployed yet: nothing to back up
        target = environment_target(project, schedule.environment, settings, self.environ)
        services = [schedule.service] if schedule.service else []
        try:
            covered = [i.service for i in plan_backups(target.stack, services)]
        except BackupPlanError:
            return []
        if not state.seeded:
            for stored in self.stored(target):
                if stored.service in covered:
                    newest = max(state.successes.get(stored.service, 0.0), stored.created)
                    state.successes[stored.service] = newest
            if state.successes:
                state.last_run = max(state.successes.values())
            state.seeded = True
        outcomes: list[BackupOutcome] = []
        # A cron schedule that never ran waits for its first time after the server started
        # watching; `every` runs at once.
        last = state.last_run
        if last is None and schedule.cron is not None:
            last = state.since
        if next_due(schedule, last, now) <= now:
            state.last_run = now
            outcomes = self.backup(target, services)
            for o in outcomes:
                if o.ok:
                    state.successes[o.service] = now
        if self.gauge is not None:
            every = interval(schedule, now)
            for service in covered:
                last = state.successes.get(service)
                self.gauge(target.project, target.environment, service, every, state.since, last)
        return outcomes


def environment_target(
    project: Project, environment: str, settings: BackupsConfig, environ: Mapping[str, str]
) -> BackupTarget:
    """The target of a server environment's backups: its project runs under its own name
    (`<base>-<env>`), its events go where the server's go (the project's subscribers)."""
    from conveyor.app.backup import backup_target

    target = backup_target(project, None, project.compose_file, settings=settings)
    target.environment = environment
    target.environ = {**project.environ, **environ}
    target.subscribers = list(project.subscribers)
    target.actor = "server"
    return target
