"""Nagios 4 run for real: configured from `model.checks`, validated with `nagios4 -v` before
each (re)load, supervised as a host daemon, its state read back from its status file, its
notifications taken from Conveyor's spool, external commands (downtimes) through its command
file.

Files, under one directory (`render.nagios.NagiosLayout`; the project's run directory under
/tmp, which the nagios user can reach, unlike the 0700 state directory):

    etc/        nagios.cfg, objects.cfg, resource.cfg (and *.new while a candidate is checked)
    var/        status.dat, retention.dat, nagios.log, nagios.lock (the daemon's PID)
    rw/         nagios.cmd (the external command FIFO), nagios.qh (query handler socket)
    results/    check results on their way to the core
    notify/     one JSON file per notification (`plugin.py notify`), taken by `take_notifications`
    plugins/    conveyor_check.py (a copy of `observe/checks/plugin.py`)

Started by root, Nagios runs as the `nagios` user (nagios_user), so the directories it writes
are given to that user; started by anyone else it runs as that user. `nagios4 -d` forks: the
daemon writes its PID to the lock file, and is stopped by that PID (`host.process.Daemon`).
A reload is SIGHUP, sent only after the candidate files passed `nagios4 -v`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import json
import os
import pwd
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, Protocol

from pydantic import ValidationError

from conveyor.errors import ChecksError
from conveyor.host.command import host_errors_as
from conveyor.host.process import Daemon, DaemonSpec, Processes
from conveyor.host.validate import check
from conveyor.model.checks import CheckNotification, NagiosHealth, NagiosObjects
from conveyor.observe.checks.status import StatusFile, parse_status
from conveyor.render.nagios import (
    INSTALL_HINT,
    PLUGIN_NAME,
    VALIDATOR,
    NagiosLayout,
    render_main,
    render_objects,
    render_resource,
)

PROGRAM = "nagios4"
NAGIOS_USER = "nagios"
STATUS_INTERVAL = 1  # seconds between two writes of the status file
STALE_AFTER = 15.0  # a status file older than this while Nagios runs: something is wrong

Ensured = Literal["started", "reloaded", "unchanged"]


def default_layout(base: Path) -> NagiosLayout:
    """The layout of a Nagios whose files live in `base`: run as the nagios user when this
    process is root and that user exists (root when it does not: left unsaid, Nagios would
    switch to its compiled-in `nagios`); the plugin run by the system's python3."""
    user = group = None
    if os.geteuid() == 0:
        user = group = "root"
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(NAGIOS_USER)
            user = entry.pw_name
            group = grp.getgrgid(entry.pw_gid).gr_name
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    return NagiosLayout(base=base.absolute(), python=python, user=user, group=group)


def plugin_text() -> str:
    return resources.files("conveyor.observe.checks").joinpath("plugin.py").read_text("utf-8")


@dataclass(frozen=True)
class SpooledNotification:
    """A notification read from the spool, with the file to remove once it is recorded."""

    file: Path
    notification: CheckNotification | None  # None: the file could not be read as one
    problem: str = ""


class NagiosControl(Protocol):
    """What the checks controller (app.checks) drives: `Nagios` here, a fake in unit tests."""

    def ensure(self, objects: NagiosObjects) -> Ensured: ...

    def running(self) -> bool: ...

    def pid(self) -> int | None: ...

    def recorded_pid(self) -> int | None: ...

    def spooled(self) -> list[SpooledNotification]: ...

    def done(self, spooled: SpooledNotification) -> None: ...


class Nagios:
    """One Nagios process and its files (see the module docstring)."""

    def __init__(
        self,
        layout: NagiosLayout,
        program: str = PROGRAM,
        *,
        timeout: float = 30.0,
        processes: Processes | None = None,
    ) -> None:
        self.layout = layout
        self.program = program
        self.timeout = timeout
        self._daemon = Daemon(
            DaemonSpec(
                name="Nagios",
                argv=(program, "-d", str(layout.main_file)),
                pid_file=layout.lock_file,
                log_file=layout.base / "start.log",
                ready=self._writes_status,
                readiness="writing its status file",
                start_timeout=timeout,
                stop_grace=timeout,
                markers=(str(layout.main_file),),
                forks=True,
                explain=_errors,
                install_hint=INSTALL_HINT,
            ),
            processes,
        )

    # ---- configuration -------------------------------------------------------------------

    def ensure(self, objects: NagiosObjects) -> Ensured:
        """Make Nagios run `objects`: write and validate the files, then start it, or reload
        it (SIGHUP) when they changed. Raises ChecksError when `nagios4 -v` rejects them (the
        candidate files are kept, for the line numbers it cites) or Nagios does not start."""
        layout = self.layout
        with self._locked():
            self._prepare()
            objects_text = render_objects(objects)
            main_text = render_main(layout, status_update_interval=STATUS_INTERVAL)
            resource_text = render_resource(layout)
            changed = (
                _read(layout.objects_file) != objects_text
                or _read(layout.main_file) != main_text
                or _read(layout.resource_file) != resource_text
            )
            if changed:
                self._install(objects_text, main_text, resource_text)
            if not self._daemon.running():
                # A FIFO left by a Nagios that was killed would take commands nobody reads;
                # the new one creates its own once its command worker runs.
                layout.command_file.unlink(missing_ok=True)
                with host_errors_as(ChecksError):
                    self._daemon.ensure()
                return "started"
            if changed:
                self._daemon.signal(signal.SIGHUP)
                return "reloaded"
            return "unchanged"

    def _install(self, objects_text: str, main_text: str, resource_text: str) -> None:
        layout = self.layout
        candidate_objects = layout.etc / "objects.cfg.new"
        candidate_main = layout.etc / "nagios.cfg.new"
        _write(layout.resource_file, resource_text)  # read only at a start or reload
        _write(candidate_objects, objects_text)
        _write(
            candidate_main,
            render_main(layout, candidate_objects, status_update_interval=STATUS_INTERVAL),
        )
        with host_errors_as(ChecksError):
            verdict = check(VALIDATOR, candidate_main, program=self.program, timeout=self.timeout)
        if not verdict.ok:
            said = "\n".join(verdict.messages) or verdict.output.strip()
            raise ChecksError(
                f"Nagios rejected the configuration Conveyor rendered ({candidate_objects} is "
                f"kept):\n{said}"
            )
        os.replace(candidate_objects, layout.objects_file)
        _write(layout.main_file, main_text)
        candidate_main.unlink(missing_ok=True)

    def _prepare(self) -> None:
        """The directories, owned by Nagios's user where it writes; the plugin in place."""
        layout = self.layout
        _reachable(layout.base.parent)
        for directory in (layout.base, layout.etc, layout.plugin_dir):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)
        for directory in layout.writable:
            directory.mkdir(parents=True, exist_ok=True)
            self._give(directory)
        plugin = layout.plugin_dir / PLUGIN_NAME
        text = plugin_text()
        if _read(plugin) != text:
            _write(plugin, text)
        plugin.chmod(0o755)

    def _give(self, path: Path) -> None:
        if self.layout.user is None or os.geteuid() != 0:
            return
        entry = pwd.getpwnam(self.layout.user)
        gid = grp.getgrnam(self.layout.group).gr_gid if self.layout.group else entry.pw_gid
        os.chown(path, entry.pw_uid, gid)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer of the files at a time (the agent and a `conveyor up` may both ensure)."""
        self.layout.base.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.layout.base / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ---- the process ---------------------------------------------------------------------

    def pid(self) -> int | None:
        return self._daemon.pid()

    def recorded_pid(self) -> int | None:
        """The PID the lock file names, whether or not it still runs."""
        return self._daemon.recorded_pid()

    def running(self) -> bool:
        return self._daemon.running()

    def configured(self) -> bool:
        """Whether Conveyor has written a configuration here (Nagios was turned on)."""
        return self.layout.main_file.exists()

    def stop(self) -> bool:
        """Stop Nagios by its PID; True when it ran."""
        return self._daemon.stop()

    def forget(self) -> None:
        """Remove the configuration, so nothing restarts Nagios (checks turned off)."""
        for path in (self.layout.main_file, self.layout.objects_file):
            path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 20) -> str:
        return self._daemon.log_tail(lines)

    def _writes_status(self) -> bool:
        status = self.status()
        pid = self._daemon.recorded_pid()
        return status is not None and pid is not None and status.pid == pid

    # ---- state ---------------------------------------------------------------------------

    def status(self) -> StatusFile | None:
        """The status file as last written; None when there is none yet."""
        try:
            text = self.layout.status_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ChecksError(
                f"cannot read Nagios's status file {self.layout.status_file}: {e}"
            ) from None
        return parse_status(text)

    def health(self, now: float | None = None) -> NagiosHealth:
        pid = self.pid()
        status = self.status() if pid is not None else None
        age = None
        if status is not None and status.created is not None:
            age = max(0.0, (now if now is not None else time.time()) - status.created)
        checks = [s for s in status.statuses if s.check is not None] if status else []
        return NagiosHealth(
            running=pid is not None,
            pid=pid,
            status_age=None if age is None else round(age, 1),
            stale=pid is not None and (age is None or age > STALE_AFTER),
            checks=len(checks),
            problems=sum(1 for s in checks if s.problem),
            config=str(self.layout.main_file) if self.configured() else None,
        )

    # ---- external commands ---------------------------------------------------------------

    def command(self, line: str, now: float | None = None) -> None:
        """Send one external command (`SCHEDULE_SVC_DOWNTIME;...`) through the command file.
        Raises ChecksError when Nagios does not read it (not running)."""
        if "\n" in line:
            raise ChecksError("an external command is one line")
        stamp = int(now if now is not None else time.time())
        data = f"[{stamp}] {line}\n".encode()
        try:
            fd = os.open(self.layout.command_file, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                raise ChecksError(
                    f"Nagios does not read its command file {self.layout.command_file}: "
                    "is it running? (`conveyor checks` says)"
                ) from None
            raise ChecksError(f"cannot open {self.layout.command_file}: {e}") from None
        try:
            os.write(fd, data)  # one write under PIPE_BUF bytes: never interleaved
        finally:
            os.close(fd)

    # ---- notifications -------------------------------------------------------------------

    def spooled(self) -> list[SpooledNotification]:
        """The notifications Nagios wrote to the spool, oldest first. Remove each with
        `done` once it is recorded (a crash in between records it again: never loses one)."""
        try:
            files = sorted(
                (p for p in self.layout.notify.iterdir() if p.suffix == ".json"),
                key=lambda p: _spool_order(p.name),
            )
        except FileNotFoundError:
            return []
        out: list[SpooledNotification] = []
        for file in files:
            try:
                raw = json.loads(file.read_text(encoding="utf-8"))
                out.append(SpooledNotification(file, CheckNotification.model_validate(raw)))
            except FileNotFoundError:
                continue  # taken by another reader
            except (OSError, ValueError, ValidationError) as e:
                out.append(SpooledNotification(file, None, f"{file.name}: {e}"))
        return out

    def done(self, spooled: SpooledNotification) -> None:
        spooled.file.unlink(missing_ok=True)


def _reachable(directory: Path) -> None:
    """Nagios runs as another user: every directory above its own must let others through."""
    for parent in (directory, *directory.parents):
        with contextlib.suppress(FileNotFoundError):
            if not parent.stat().st_mode & 0o001:
                raise ChecksError(
                    f"Nagios's user cannot reach its files: {parent} does not let other users "
                    "through (it needs o+x)"
                )


def _spool_order(name: str) -> tuple[int, str]:
    head = name.split("-", 1)[0]
    return (int(head) if head.isdigit() else 0, name)


def _errors(log: str) -> str:
    """What Nagios's start output says went wrong."""
    lines = [row for row in log.splitlines() if "Error" in row or "error" in row]
    return "\n".join(lines) if lines else log


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)
