"""Probes Conveyor runs itself: one HTTP GET or one TCP connect, on 127.0.0.1."""

from __future__ import annotations

import http.client
import socket


def http_ok(port: int, path: str, timeout: float) -> bool:
    """True when GET path answers 2xx or 3xx within `timeout`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "conveyor-probe", "Connection": "close"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return 200 <= status < 400


def tcp_ok(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False
