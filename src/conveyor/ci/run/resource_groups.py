"""`resource_group` across pipelines on this host: one job of a group at a time (the schedule
already serialises them inside one pipeline), by an exclusive lock file per group."""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def resource_lock(locks: Path, group: str, say: Callable[[str], None]) -> Iterator[None]:
    """Hold `group`'s lock (waiting, and saying so, while another pipeline's job holds it)."""
    locks.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", group)
    with (locks / f"{safe}.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"Waiting for resource_group {group}: another pipeline's job holds it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
