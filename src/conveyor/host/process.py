"""Supervised host processes: the daemons Conveyor runs beside itself (HAProxy, the registry,
dockerd, the background agent; Prometheus, Alertmanager and Nagios next).

A `DaemonSpec` says how one runs: argv, PID file, log file, environment, working directory, how
to tell it is ready, and how to stop it. A `Daemon` drives it: `start` spawns it detached (own
session, output appended to its log, PID in its PID file) unless its PID file names it alive,
`wait_ready` polls its readiness probe until a deadline, `ensure` does both, `stop` signals it
by PID and escalates to SIGKILL after a grace period, `restart` is stop then ensure.

The PID file is the only memory, so any process can pick a daemon up where another left it. A
PID file can outlive its process and the number be reused: a PID counts as the daemon's only when
the process is alive (zombies are dead), runs the spec's program and holds its `markers` (its
config file, say) on its command line. Errors name what the daemon wrote to its log since the
start that failed.

`Processes` is the seam to the operating system's process table (`LocalProcesses` here; the
bootstrap tests pass a fake one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from conveyor.errors import CommandError, DaemonError
from conveyor.host.command import DEFAULT_INSTALL_HINT, cannot_run, not_found

POLL_INTERVAL = 0.05
LOG_LINES = 20


@dataclass(frozen=True)
class DaemonSpec:
    """How one daemon runs.

    `env` is added to this process's environment; `cwd` None keeps this process's directory.
    `ready` is the readiness probe (None: alive is ready); `readiness` says what it checks,
    for messages ("answering `docker info`"). `markers` are arguments its command
    line must hold besides its program (a config file), so a reused PID is not taken for it.
    `forks`: argv is a launcher that exits once the daemon runs and the daemon writes
    `pid_file` itself (`haproxy -D`, `nagios4 -d`). `explain` picks the lines of its log that
    say why it failed (default: the last ones). `install_hint` says how to get the program."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    ready: Callable[[], bool] | None = None
    readiness: str = "ready"
    start_timeout: float = 30.0
    stop_signal: int = signal.SIGTERM
    stop_grace: float = 10.0
    markers: tuple[str, ...] = ()
    forks: bool = False
    explain: Callable[[str], str] | None = None
    install_hint: str = DEFAULT_INSTALL_HINT
    poll_interval: float = POLL_INTERVAL

    @property
    def program(self) -> str:
        """The program's file name, as a process's command line shows it in argv[0]."""
        return Path(self.argv[0]).name


class Processes(Protocol):
    """The operating system's process table, as a Daemon uses it."""

    def spawn(
        self,
        argv: Sequence[str],
        log: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> int:
        """Start argv detached in its own session, output appended to `log`; return its PID.
        Raises CommandError when it cannot start."""
        ...

    def running(self, pid: int, program: str, markers: Sequence[str] = ()) -> bool:
        """Whether `pid` is alive (not a zombie), runs `program` and holds `markers`."""
        ...

    def exit_code(self, pid: int) -> int | None:
        """How a process this object spawned ended; None while it runs (or when unknown)."""
        ...

    def kill(self, pid: int, signum: int) -> None:
        """Send `signum` to `pid`; a process already gone is not an error."""
        ...


# Children spawned by this process, to poll and reap them: a daemon we started and that died
# would otherwise stay a zombie, and zombies look alive to kill(pid, 0).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LocalProcesses:
    """Processes on this machine."""

    def spawn(
        self,
        argv: Sequence[str],
        log: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> int:
        args = tuple(argv)
        for ended in [pid for pid, child in _CHILDREN.items() if child.returncode is not None]:
            del _CHILDREN[ended]  # reaped: nothing left to ask about them
        log.parent.mkdir(parents=True, exist_ok=True)
        # Output goes to a file, not a pipe: nobody would read a pipe once this process exits.
        with log.open("ab") as out:
            try:
                child = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # setsid: outlives this process and its terminal
                    close_fds=True,
                    cwd=cwd,
                    env={**os.environ, **env} if env else None,
                )
            except OSError as e:
                raise cannot_run(args, e) from e
        _CHILDREN[child.pid] = child
        return child.pid

    def running(self, pid: int, program: str, markers: Sequence[str] = ()) -> bool:
        if not pid_alive(pid):
            return False
        argv = _cmdline(pid)
        if not argv:  # no procfs, or a process exiting right now: alive is all we know
            return True
        held = set(argv[1:])
        return Path(argv[0]).name == program and all(m in held for m in markers)

    def exit_code(self, pid: int) -> int | None:
        child = _CHILDREN.get(pid)
        return None if child is None else child.poll()

    def kill(self, pid: int, signum: int) -> None:
        _check_pid(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists and is not a zombie, whatever it runs. Reaps it
    when it is a child of this process that has ended."""
    if pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    try:  # no procfs: signal 0 is the best test left
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_started(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot (field 22 of /proc/PID/stat);
    None without procfs or when there is no such process. A PID is given again once its
    process has ended; the PID with its start time names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the name, which may hold spaces
    try:
        return int(fields[19])  # field 22 of the whole line: the 20th after the name
    except (IndexError, ValueError):
        return None


def wait_until(
    condition: Callable[[], bool], timeout: float, interval: float = POLL_INTERVAL
) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def read_pid(pid_file: Path) -> int | None:
    """The first number in a PID file; None when there is no usable one."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 1 else None  # 0, -1 and 1 would signal groups or init


class Daemon:
    """One supervised daemon, as its DaemonSpec describes it (see the module docstring)."""

    def __init__(self, spec: DaemonSpec, processes: Processes | None = None) -> None:
        self.spec = spec
        self.processes: Processes = processes or LocalProcesses()
        self._log_start = 0  # where the log of this object's last start begins

    # ---- state ---------------------------------------------------------------------------

    def recorded_pid(self) -> int | None:
        """The PID in the PID file, whether or not that process still runs."""
        return read_pid(self.spec.pid_file)

    def pid(self) -> int | None:
        """The daemon's PID when it runs (the PID file names it alive); None otherwise."""
        pid = self.recorded_pid()
        return pid if pid is not None and self._alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def log_tail(self, lines: int = LOG_LINES) -> str:
        """The end of what the daemon logged since this object last started it."""
        try:
            with self.spec.log_file.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(self._log_start if self._log_start <= size else 0)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> int:
        """Start the daemon unless it runs; return its PID. Does not wait for readiness (a
        forking daemon is waited for until it has written its PID file)."""
        running = self.pid()
        if running is not None:
            return running
        try:
            self._log_start = self.spec.log_file.stat().st_size
        except OSError:
            self._log_start = 0
        if self.spec.forks:
            return self._launch()
        pid = self._spawn()
        _write_atomic(self.spec.pid_file, f"{pid}\n")
        return pid

    def wait_ready(self, timeout: float | None = None) -> int:
        """Poll until the daemon is alive and its probe answers; return its PID. Raises
        DaemonError when it exits first or is not ready within `timeout` seconds."""
        limit = self.spec.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        probe = self.spec.ready
        while True:
            pid = self.recorded_pid()
            if pid is None or not self._alive(pid):
                raise DaemonError(self._failed("did not start", pid))
            if probe is None or probe():
                return pid
            if time.monotonic() >= deadline:
                raise DaemonError(
                    self._failed(
                        f"(PID {pid}) started but is not {self.spec.readiness} after {limit:g} s",
                        None,
                    )
                )
            time.sleep(self.spec.poll_interval)

    def ensure(self, timeout: float | None = None) -> int:
        """Start the daemon if needed and wait until it is ready; return its PID."""
        self.start()
        return self.wait_ready(timeout)

    def restart(self, timeout: float | None = None) -> int:
        self.stop()
        return self.ensure(timeout)

    def signal(self, signum: int) -> bool:
        """Send `signum` to the running daemon (a reload, say); False when it does not run."""
        pid = self.pid()
        if pid is None:
            return False
        self.processes.kill(pid, signum)
        return True

    def stop(self, grace: float | None = None) -> bool:
        """Stop the daemon by its PID: the spec's stop signal, then SIGKILL after `grace`
        seconds. Removes the PID file. True when it was running."""
        pid = self.pid()
        if pid is not None:
            wait = self.spec.stop_grace if grace is None else grace
            self.processes.kill(pid, self.spec.stop_signal)
            if not wait_until(lambda: not self._alive(pid), wait, self.spec.poll_interval):
                self.processes.kill(pid, signal.SIGKILL)
                wait_until(lambda: not self._alive(pid), wait, self.spec.poll_interval)
        self.spec.pid_file.unlink(missing_ok=True)
        return pid is not None

    # ---- inside --------------------------------------------------------------------------

    def _alive(self, pid: int) -> bool:
        return self.processes.running(pid, self.spec.program, self.spec.markers)

    def _spawn(self) -> int:
        spec = self.spec
        try:
            return self.processes.spawn(spec.argv, spec.log_file, cwd=spec.cwd, env=spec.env)
        except CommandError as e:
            if e.problem == "not found":
                raise not_found(e.argv, spec.install_hint) from e
            raise

    def _launch(self) -> int:
        """Run a forking daemon's launcher, then wait for the daemon's own PID file."""
        spec = self.spec
        spec.pid_file.unlink(missing_ok=True)  # a stale one would be read as the new daemon's
        launcher = self._spawn()
        deadline = time.monotonic() + spec.start_timeout
        while (code := self.processes.exit_code(launcher)) is None:
            if time.monotonic() >= deadline:
                self.processes.kill(launcher, signal.SIGKILL)
                raise DaemonError(
                    self._failed(f"did not finish starting within {spec.start_timeout:g} s", None)
                )
            time.sleep(spec.poll_interval)
        if code != 0:
            raise DaemonError(self._failed(f"did not start (exit code {code})", None))
        while (pid := self.pid()) is None:
            if time.monotonic() >= deadline:
                raise DaemonError(
                    self._failed(f"started but wrote no live PID to {spec.pid_file}", None)
                )
            time.sleep(spec.poll_interval)
        return pid

    def _failed(self, what: str, pid: int | None) -> str:
        spec = self.spec
        code = self.processes.exit_code(pid) if pid is not None else None
        if code is not None:
            what += f" (exit code {code})"
        text = self.log_tail(lines=10_000)
        said = spec.explain(text) if spec.explain else text
        said = "\n".join(said.strip().splitlines()[-LOG_LINES:])
        if not said:
            return f"{spec.name} {what}; its log {spec.log_file} says nothing"
        return f"{spec.name} {what}; from its log {spec.log_file}:\n{said}"


def _check_pid(pid: int) -> None:
    if pid <= 1:
        raise ValueError(f"refusing to signal PID {pid}")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0") if arg]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
