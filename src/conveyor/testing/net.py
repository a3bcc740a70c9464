"""Loopback helpers for tests and benchmarks."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
