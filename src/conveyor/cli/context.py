"""Builds the engine for a CLI command from -f/--file and --project-name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from conveyor.deploy.engine import Engine
from conveyor.deploy.executor import Progress
from conveyor.deploy.project import ProjectPaths, pid_alive
from conveyor.errors import ConveyorError
from conveyor.model.stack import Stack
from conveyor.store.db import Store

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def find_compose_file(given: Path | None) -> Path:
    """The file Docker Compose would pick: -f, else the first default name present."""
    if given is not None:
        if not given.exists():
            raise ConveyorError(f"{given}: no such file")
        return given.resolve()
    for name in DEFAULT_FILES:
        p = Path.cwd() / name
        if p.exists():
            return p.resolve()
    raise ConveyorError(
        f"no compose file in {Path.cwd()} (looked for {', '.join(DEFAULT_FILES)}); pass -f FILE"
    )


@dataclass
class Context:
    compose_file: Path
    project_name: str | None
    console: Console
    err: Console

    def stack(self) -> Stack:
        from conveyor.spec import load_stack

        return load_stack(self.compose_file, project_name=self.project_name, environ=os.environ)

    def paths(self, stack: Stack | None = None) -> ProjectPaths:
        project = stack.project if stack else self.stack().project
        home = os.environ.get("CONVEYOR_STATE_HOME")
        return ProjectPaths(self.compose_file, project, Path(home) if home else None)

    def engine(
        self, paths: ProjectPaths, progress: Progress | None = None, actor: str = "cli"
    ) -> Engine:
        from conveyor.router.haproxy import HAProxyRouter
        from conveyor.runtime.docker_engine import DockerEngine

        return Engine(
            paths=paths,
            runtime=DockerEngine(),
            router=HAProxyRouter(paths.router_dir),
            store=Store.open(paths.state_dir),
            actor=actor,
            progress=progress,
            say=lambda msg: self.err.print(f"[dim]{msg}[/]", highlight=False),
        )


def agent_pid(paths: ProjectPaths) -> int | None:
    try:
        pid = int(paths.agent_pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_agent(ctx: Context, paths: ProjectPaths) -> int:
    """Start `conveyor agent` in the background unless one already runs for the project."""
    running = agent_pid(paths)
    if running:
        return running
    cmd = [sys.executable, "-m", "conveyor", "-f", str(ctx.compose_file)]
    if ctx.project_name:
        cmd += ["--project-name", ctx.project_name]
    cmd.append("agent")
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.agent_log, "ab") as logf:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(ctx.compose_file.parent),
            env={**os.environ},
        )
    paths.agent_pid_file.write_text(str(proc.pid))
    return proc.pid


def stop_agent(paths: ProjectPaths, timeout: float = 15.0) -> bool:
    """SIGTERM the project's agent by its recorded PID and wait for it to exit."""
    import signal

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
