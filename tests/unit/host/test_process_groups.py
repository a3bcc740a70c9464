"""Stopping a process group a dead runner left: only while the recorded leader leads it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.host.process_groups import identity, kill_group
from conveyor.host.shell import ScriptProcess


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ScriptProcess]:
    """A script in its own process group with a background child (the group outlives no one
    by accident: killed at the end whatever the test did)."""
    process = ScriptProcess(
        ["bash", "-c", "sleep 600 & sleep 600"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}
    )
    yield process
    process.kill()
    process.stream(lambda _chunk: None, 30.0)


def members(pgid: int) -> list[int]:
    """The live processes of the group, from /proc (a killed child may linger as a zombie
    until its new parent reaps it: it runs nothing)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def gone(pgid: int, wait: float = 10.0) -> bool:
    """Whether the group has no live process left, within `wait` seconds: a SIGKILL is
    delivered at once but a busy machine may take a moment to finish the process's exit."""
    deadline = time.monotonic() + wait
    while members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_group_is_killed_while_its_recorded_leader_leads_it(group: ScriptProcess) -> None:
    leader = identity(group.pid)
    assert leader is not None
    assert identity(group.pid) == leader  # stable: read again, the same
    assert kill_group(group.pid, leader) is True
    assert group.stream(lambda _chunk: None, 30.0).exit_code == -9
    assert gone(group.pid)  # the background child went with it


def test_a_pid_now_led_by_another_process_is_left_alone(group: ScriptProcess) -> None:
    leader = identity(group.pid)
    assert leader is not None
    boot, ticks = leader.rsplit(":", 1)
    other = f"{boot}:{int(ticks) + 1}"  # what a reused PID looks like: a later start
    assert kill_group(group.pid, other) is False
    assert group.pid in members(group.pid)


def test_a_process_that_is_gone_has_no_identity_and_nothing_is_killed(tmp_path: Path) -> None:
    done = ScriptProcess(["true"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    leader = identity(done.pid)
    done.stream(lambda _chunk: None, 30.0)  # reaped: the PID is free
    assert identity(done.pid) is None
    assert leader is not None and kill_group(done.pid, leader) is False
