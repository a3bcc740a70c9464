"""Probes Conveyor runs itself: one HTTP GET or one TCP connect to a replica's endpoint."""

from __future__ import annotations

import http.client
import socket

from conveyor.model.endpoint import Endpoint


def http_ok(endpoint: Endpoint, path: str, timeout: float) -> bool:
    """True when GET path answers 2xx or 3xx within `timeout`."""
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "conveyor-probe", "Connection": "close"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return 200 <= status < 400


def tcp_ok(endpoint: Endpoint, timeout: float) -> bool:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return True
    except OSError:
        return False
