"""Process groups a dead process left behind (a CI shell job's script, whose runner was
SIGKILLed): who leads a group, and stopping it without ever hitting a stranger.

A PID is reused once its process is gone, so a group is named by its leader's PID *and* the
leader's identity: the boot it started in and its start time in clock ticks since boot (field
22 of /proc/PID/stat). A group is killed only while that same process still leads it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

PROC = Path("/proc")
_BOOT_ID = PROC / "sys" / "kernel" / "random" / "boot_id"
# Fields of /proc/PID/stat counted after the command name's closing parenthesis (field 3 is
# the first): the process group is field 5, the start time field 22.
_PGRP, _STARTTIME = 5 - 3, 22 - 3


def identity(pid: int) -> str | None:
    """`<boot id>:<start time>` of process `pid`, or None when there is no such process (or
    no /proc to ask)."""
    stat = _stat(pid)
    if stat is None:
        return None
    return f"{_boot_id()}:{stat[_STARTTIME]}"


def kill_group(pgid: int, leader: str) -> bool:
    """SIGKILL process group `pgid` if process `pgid` is still the one `leader` (its
    `identity`) names and still leads the group. True when the group was killed."""
    stat = _stat(pgid)
    if stat is None or int(stat[_PGRP]) != pgid:
        return False  # gone, or its PID now belongs to another process that leads no group
    if f"{_boot_id()}:{stat[_STARTTIME]}" != leader:
        return False  # the PID was reused
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
        return True
    return False


def _stat(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown-boot"
