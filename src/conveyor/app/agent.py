"""The project's background reconciler process (`conveyor up` starts it, `down` stops it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conveyor.app.project import Project
from conveyor.deploy.project import ProjectPaths, pid_alive


def agent_pid(paths: ProjectPaths) -> int | None:
    try:
        pid = int(paths.agent_pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_agent(project: Project) -> int:
    """Start `conveyor agent` in the background unless one already runs for the project."""
    paths = project.paths()
    running = agent_pid(paths)
    if running:
        return running
    cmd = [sys.executable, "-m", "conveyor", "-f", str(project.compose_file)]
    if project.project_name:
        cmd += ["--project-name", project.project_name]
    cmd.append("agent")
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.agent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as logf:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(project.compose_file.parent),
            env=dict(project.environ),
        )
    paths.agent_pid_file.write_text(str(proc.pid))
    return proc.pid


def stop_agent(paths: ProjectPaths, timeout: float = 15.0) -> bool:
    """SIGTERM the project's agent by its recorded PID and wait for it to exit."""
    pid = agent_pid(paths)
    if pid is None:
        paths.agent_pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    paths.agent_pid_file.unlink(missing_ok=True)
    return True
