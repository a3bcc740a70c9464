"""The one place shipping does network I/O: POST a request, hand back the answer.

`Unreachable` stands for every way of getting no answer (refused, reset, timed out, a TLS
failure): the sender retries those like a 503.
"""

from __future__ import annotations

import ssl
from typing import Protocol

import httpx

from conveyor.observe.logs.ship.verdict import Answer, Request


class Unreachable(Exception):
    """No HTTP answer came back."""


class Transport(Protocol):
    def post(self, request: Request) -> Answer: ...

    def close(self) -> None: ...


class HttpTransport:
    """HTTP/1.1 with keep-alive (one connection per destination, from its sender thread)."""

    def __init__(self, timeout: float) -> None:
        # The system's CA store (where a company CA is installed), not certifi's; proxies from
        # the environment are not followed: the file names the destination.
        self._client = httpx.Client(
            timeout=timeout,
            verify=ssl.create_default_context(),
            trust_env=False,
            follow_redirects=False,
        )

    def post(self, request: Request) -> Answer:
        try:
            response = self._client.post(
                request.url, content=request.body, headers=dict(request.headers)
            )
        except httpx.HTTPError as exc:
            raise Unreachable(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            ) from exc
        headers = {k.lower(): v for k, v in response.headers.items()}
        return Answer(response.status_code, headers, response.content)

    def close(self) -> None:
        self._client.close()
