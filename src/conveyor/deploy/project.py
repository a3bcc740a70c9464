"""Where a project's state lives, and the one-writer lock over it."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import LockBusy
from conveyor.store.database import private_dir


@dataclass(frozen=True)
class ProjectPaths:
    """State sits next to the compose file (`.conveyor/<project>/`), so it travels with the
    checkout and two projects in one directory don't mix. Sockets live under /tmp because unix
    socket paths are limited to 107 bytes."""

    compose_file: Path
    project: str
    # Where project state directories live; default: `.conveyor/` next to the compose file.
    # CI jobs set it (CONVEYOR_STATE_HOME) so deploys from throw-away checkouts share state.
    state_home: Path | None = None

    @property
    def state_dir(self) -> Path:
        home = self.state_home or self.compose_file.parent / ".conveyor"
        return home / self.project

    @property
    def run_dir(self) -> Path:
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        return Path("/tmp") / f"conveyor-{digest}"

    @property
    def router_dir(self) -> Path:
        return self.run_dir / "haproxy"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"

    @property
    def agent_pid_file(self) -> Path:
        return self.state_dir / "agent.pid"

    @property
    def agent_log(self) -> Path:
        return self.state_dir / "agent.log"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def configs_dir(self) -> Path:
        return self.state_dir / "configs"


@contextmanager
def project_lock(paths: ProjectPaths, wait: float = 30.0, holder: str = "cli") -> Iterator[None]:
    """Hold the project's writer lock. Waits up to `wait` seconds (the agent holds it only
    briefly); past that, names the holder in the error."""
    private_dir(paths.state_dir)
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    who = Path(paths.lock_file).read_text().strip() or "another process"
                    raise LockBusy(
                        f"project {paths.project!r} is busy: {who} holds {paths.lock_file}; "
                        "run the command again once that one has finished"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder} (pid {os.getpid()})".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
