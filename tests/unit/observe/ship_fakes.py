"""In-process stand-ins for the shipping tests: the fake servers' request handlers called
directly as the transport (no sockets), and a reporter that keeps the events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from conveyor.model.events import Event, EventKind, Level, Subject
from conveyor.observe.logs.ship.transport import Unreachable
from conveyor.observe.logs.ship.verdict import Answer, Request
from conveyor.testing.loopback_http import Reply

Handle = Callable[[str, str, dict[str, str], bytes], Reply]


class DirectTransport:
    """Hands each request to a fake server's `handle`; `down` makes it unreachable."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle
        self.down = False
        self.sent: list[Request] = []
        self.closed = False

    def post(self, request: Request) -> Answer:
        self.sent.append(request)
        if self.down:
            raise Unreachable("ConnectError: [Errno 111] Connection refused")
        headers = {k.lower(): v for k, v in request.headers.items()}
        reply = self._handle("POST", urlsplit(request.url).path, headers, request.body)
        if reply.status is None:
            raise Unreachable("RemoteProtocolError: Server disconnected without sending a response")
        return Answer(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.body)

    def close(self) -> None:
        self.closed = True


class Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
    ) -> Event:
        event = Event(
            kind=kind,
            message=message,
            subject=Subject(project="shop"),
            level=level,
            data=data or {},
        )
        self.events.append(event)
        return event

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]
