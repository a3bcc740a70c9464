"""The supervisor against real short-lived processes: a small Python script is the daemon.

Synchronisation is by polling with a deadline (`wait_until`) on what a user would see (the
daemon's ready file, its PID being gone), never by sleeping a fixed time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conveyor.errors import CommandError, DaemonError
from conveyor.host.process import Daemon, DaemonSpec, pid_alive, read_pid, wait_until

# argv: MODE READY_FILE. Writes "PID CWD WORD" to READY_FILE once its signal handlers are set.
DAEMON = """\
import os, pathlib, signal, sys
mode, ready = sys.argv[1], pathlib.Path(sys.argv[2])
print("daemon starting", flush=True)
if mode == "fail":
    print("fatal: cannot open port 1", flush=True)
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGUSR1, lambda *_: (ready.parent / "reloaded").write_text("yes"))
ready.write_text(f"{os.getpid()} {os.getcwd()} {os.environ.get('WORD', '')}")
while True:
    signal.pause()
"""

# A launcher that forks the daemon off and exits, the daemon writing its own PID file
# (argv: MODE PID_FILE READY_FILE), like `haproxy -D`.
FORKING = """\
import os, pathlib, signal, sys
mode, pid_file, ready = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
if mode == "fail":
    print("[ALERT] (1) : cannot bind 127.0.0.1:1", flush=True)
    sys.exit(2)
if os.fork() > 0:
    os._exit(0)
os.setsid()
pid_file.write_text(f"{os.getpid()}\\n")
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
ready.write_text(str(os.getpid()))
while True:
    signal.pause()
"""


@pytest.fixture
def started() -> Iterator[list[Daemon]]:
    """Daemons a test made; any still running at the end are stopped by their PID."""
    daemons: list[Daemon] = []
    yield daemons
    for daemon in daemons:
        daemon.stop(grace=5)


def spec_for(tmp_path: Path, mode: str = "serve", **changes: object) -> DaemonSpec:
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    ready_file = tmp_path / "ready"
    pid_file = tmp_path / "daemon.pid"

    def ready() -> bool:
        # Ready when the process the PID file names has written its own PID.
        try:
            return ready_file.read_text().split()[0] == str(read_pid(pid_file))
        except (OSError, IndexError):
            return False

    spec = DaemonSpec(
        name="test-daemon",
        argv=(sys.executable, str(script), mode, str(ready_file)),
        pid_file=pid_file,
        log_file=tmp_path / "daemon.log",
        ready=ready,
        readiness="writing its ready file",
        start_timeout=30,
        stop_grace=10,
        markers=(str(script),),
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def make(started: list[Daemon], spec: DaemonSpec) -> Daemon:
    daemon = Daemon(spec)
    started.append(daemon)
    return daemon


def test_spawn_ready_kill_restart_stop(tmp_path: Path, started: list[Daemon]) -> None:
    daemon = make(started, spec_for(tmp_path))

    first = daemon.ensure()
    assert daemon.running() and daemon.pid() == first
    assert read_pid(daemon.spec.pid_file) == first
    assert daemon.ensure() == first  # already running and ready: nothing new is started

    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: not daemon.running(), 10)
    assert daemon.pid() is None
    assert daemon.recorded_pid() == first  # the PID file outlives its process

    second = daemon.ensure()
    assert second != first
    assert daemon.running()

    assert daemon.stop()
    assert not pid_alive(second)
    assert not daemon.spec.pid_file.exists()
    assert not daemon.stop()  # nothing left to stop
    assert daemon.log_tail().splitlines()[-1] == "daemon starting"  # this start's output only


def test_restart_replaces_the_process(tmp_path: Path, started: list[Daemon]) -> None:
    daemon = make(started, spec_for(tmp_path))
    first = daemon.ensure()
    second = daemon.restart()
    assert second != first
    assert not pid_alive(first)
    assert daemon.pid() == second


def test_env_and_cwd_reach_the_daemon(tmp_path: Path, started: list[Daemon]) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    daemon = make(started, spec_for(tmp_path, cwd=workdir, env={"WORD": "hello"}))
    pid = daemon.ensure()
    assert (tmp_path / "ready").read_text().split() == [str(pid), str(workdir), "hello"]


def test_a_signal_reaches_the_running_daemon(tmp_path: Path, started: list[Daemon]) -> None:
    daemon = make(started, spec_for(tmp_path))
    assert not daemon.signal(signal.SIGUSR1)  # not running yet
    daemon.ensure()
    assert daemon.signal(signal.SIGUSR1)
    assert wait_until((tmp_path / "reloaded").exists, 10)


def test_a_daemon_that_exits_at_start_is_reported_with_its_log(
    tmp_path: Path, started: list[Daemon]
) -> None:
    daemon = make(started, spec_for(tmp_path, "fail"))
    daemon.spec.log_file.write_text("an older start's line\n")
    with pytest.raises(DaemonError, match="test-daemon did not start") as caught:
        daemon.ensure()
    message = str(caught.value)
    assert "fatal: cannot open port 1" in message
    assert "exit code 3" in message
    assert "an older start's line" not in message  # only what this start logged
    assert not daemon.running()


def test_a_daemon_never_ready_is_reported_and_left_to_stop(
    tmp_path: Path, started: list[Daemon]
) -> None:
    daemon = make(started, spec_for(tmp_path, ready=lambda: False, start_timeout=0.3))
    with pytest.raises(DaemonError, match=r"is not writing its ready file after 0\.3 s"):
        daemon.ensure()
    assert daemon.running()  # alive but not ready: the caller decides
    assert daemon.stop()


def test_a_daemon_ignoring_its_stop_signal_is_killed(tmp_path: Path, started: list[Daemon]) -> None:
    daemon = make(started, spec_for(tmp_path, "stubborn"))
    pid = daemon.ensure()
    assert daemon.stop(grace=0.2)
    assert not pid_alive(pid)


def test_a_stale_pid_file_of_a_dead_process_is_ignored(
    tmp_path: Path, started: list[Daemon]
) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    daemon = make(started, spec_for(tmp_path))
    daemon.spec.pid_file.write_text(f"{ended.pid}\n")
    assert not daemon.running()
    assert not daemon.stop()
    assert not daemon.spec.pid_file.exists()
    daemon.spec.pid_file.write_text(f"{ended.pid}\n")
    assert daemon.ensure() != ended.pid


def test_a_pid_file_naming_another_live_process_is_not_ours(
    tmp_path: Path, started: list[Daemon]
) -> None:
    # The same program (python) with other arguments: the PID was reused by someone else.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        daemon = make(started, spec_for(tmp_path))
        daemon.spec.pid_file.write_text(f"{other.pid}\n")
        assert not daemon.running()
        assert not daemon.stop()  # does not signal a process that is not the daemon
        assert other.poll() is None
        daemon.spec.pid_file.write_text(f"{other.pid}\n")
        pid = daemon.ensure()
        assert pid != other.pid
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_missing_program_is_a_clear_error(tmp_path: Path, started: list[Daemon]) -> None:
    spec = spec_for(tmp_path, install_hint="apt-get install test-daemon")
    daemon = make(started, replace(spec, argv=("no-such-daemon-x", *spec.argv[1:])))
    with pytest.raises(CommandError, match="no-such-daemon-x is not installed") as caught:
        daemon.ensure()
    assert "apt-get install test-daemon" in str(caught.value)
    assert not daemon.spec.pid_file.exists()


def forking_spec(tmp_path: Path, mode: str) -> DaemonSpec:
    script = tmp_path / "forking.py"
    script.write_text(FORKING)
    pid_file, ready_file = tmp_path / "forked.pid", tmp_path / "forked.ready"
    return DaemonSpec(
        name="forker",
        argv=(sys.executable, str(script), mode, str(pid_file), str(ready_file)),
        pid_file=pid_file,
        log_file=tmp_path / "forker.log",
        ready=lambda: ready_file.exists() and ready_file.read_text() == str(read_pid(pid_file)),
        markers=(str(script),),
        forks=True,
        # Like HAProxy's: only the [ALERT] lines explain a failure.
        explain=lambda text: "\n".join(
            line for line in text.splitlines() if line.startswith("[ALERT]")
        ),
    )


def test_a_forking_daemon_writes_its_own_pid_file(tmp_path: Path, started: list[Daemon]) -> None:
    daemon = make(started, forking_spec(tmp_path, "serve"))
    pid = daemon.ensure()
    assert daemon.recorded_pid() == pid
    assert daemon.running()
    assert daemon.stop()
    assert wait_until(lambda: not pid_alive(pid), 10)


def test_a_forking_daemon_whose_launcher_fails_is_explained(
    tmp_path: Path, started: list[Daemon]
) -> None:
    daemon = make(started, forking_spec(tmp_path, "fail"))
    with pytest.raises(DaemonError, match=r"exit code 2\); from its log") as caught:
        daemon.ensure()
    assert "cannot bind 127.0.0.1:1" in str(caught.value)
    assert not daemon.running()


@pytest.mark.parametrize("text", ["", "x", "0", "1", "-1", "-42 junk"])
def test_pid_files_without_a_usable_pid_name_nothing(tmp_path: Path, text: str) -> None:
    pid_file = tmp_path / "p.pid"
    pid_file.write_text(text)
    assert read_pid(pid_file) is None  # 0, -1 and 1 would signal a group or init


def test_pid_alive_counts_ended_children_as_dead() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_until(lambda: not pid_alive(child.pid), 10)  # reaped, not left a zombie
    assert not pid_alive(0)
    assert not pid_alive(-1)
