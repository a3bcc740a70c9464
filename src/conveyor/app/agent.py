"""The project's background reconciler process (`conveyor up` starts it, `down` stops it), a
daemon supervised by PID file like every other host process."""

from __future__ import annotations

import sys

from conveyor.app.project import Project
from conveyor.deploy.project import ProjectPaths
from conveyor.host.process import Daemon, DaemonSpec
from conveyor.store.database import private_dir, private_file


def _daemon(
    paths: ProjectPaths, project: Project | None = None, checks: bool = True, logs: bool = True
) -> Daemon:
    compose = str(paths.compose_file)
    argv: tuple[str, ...] = (sys.executable, "-m", "conveyor", "-f", compose)
    if project is not None:
        # The agent reads the same files and profiles as the command that started it.
        for extra in project.file_paths()[1:]:
            argv += ("-f", str(extra))
        for profile in project.profiles:
            argv += ("--profile", profile)
    if project is not None and project.project_name:
        argv += ("--project-name", project.project_name)
    tail: tuple[str, ...] = ("agent",)
    if not checks:
        tail += ("--no-checks",)
    if not logs:
        tail += ("--no-logs",)
    return Daemon(
        DaemonSpec(
            name="conveyor agent",
            argv=(*argv, *tail),
            pid_file=paths.agent_pid_file,
            log_file=paths.agent_log,
            env=dict(project.environ) if project is not None else None,
            cwd=paths.compose_file.parent,
            markers=(compose, *tail),
            stop_grace=15.0,
        )
    )


def agent_pid(paths: ProjectPaths) -> int | None:
    return _daemon(paths).pid()


def start_agent(project: Project, checks: bool = True, logs: bool = True) -> int:
    """Start `conveyor agent` in the background unless one already runs for the project;
    `checks` False starts it with --no-checks (it leaves Nagios alone), `logs` False with
    --no-logs (it collects no logs: `conveyor up --no-logs`)."""
    paths = project.paths()
    private_dir(paths.state_dir)
    private_file(paths.agent_log)  # it logs events: environment values, errors
    if _daemon(paths).pid() is not None and (
        (_daemon(paths, checks=False).pid() is None) != checks
        or (_daemon(paths, logs=False).pid() is None) != logs
    ):
        _daemon(paths).stop()  # it runs with other flags: start the one asked for
    pid = _daemon(paths, project, checks, logs).start()
    private_file(paths.agent_pid_file)
    return pid


def restart_agent(project: Project) -> int | None:
    """Start the running agent again, with the flags it runs with (it reads conveyor.yaml's
    hosts when it starts: one started before a host left the fleet would still drive it);
    None when none runs."""
    paths = project.paths()
    if _daemon(paths).pid() is None:
        return None
    checks = _daemon(paths, checks=False).pid() is None
    logs = _daemon(paths, logs=False).pid() is None
    _daemon(paths).stop()
    return start_agent(project, checks=checks, logs=logs)


def stop_agent(paths: ProjectPaths) -> bool:
    """SIGTERM the project's agent by its recorded PID (SIGKILL after 15 s); True if it ran."""
    return _daemon(paths).stop()
