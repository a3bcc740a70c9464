"""Reporting: the one way Conveyor says what it does. `Timeline.emit` records durable events
in the project's database and hands every event to in-process subscribers (CLI progress,
structured logs, and later the server's live updates)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from conveyor.model.events import Event, EventKind, Level, Subject
from conveyor.store.events import EventLog

Subscriber = Callable[[Event], None]


class Timeline:
    """Bound to a subject (project, environment, commit…); `bind()` narrows it (a rollout, a
    service) and shares the log and subscribers."""

    def __init__(
        self,
        subject: Subject,
        log: EventLog | None = None,
        actor: str = "cli",
        subscribers: list[Subscriber] | None = None,
    ) -> None:
        self.subject = subject
        self.actor = actor
        self._log = log
        self._subscribers: list[Subscriber] = subscribers if subscribers is not None else []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Deliver every later event to `fn`; returns the function that unsubscribes it."""
        with self._lock:
            self._subscribers.append(fn)

        def cancel() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return cancel

    def bind(self, actor: str | None = None, **subject: Any) -> Timeline:
        return Timeline(
            self.subject.with_(**subject), self._log, actor or self.actor, self._subscribers
        )

    def emit(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
        *,
        environment: str | None = None,
        commit: str | None = None,
        pipeline: int | None = None,
        job: int | None = None,
        release: int | None = None,
        rollout: int | None = None,
        service: str | None = None,
        replica: str | None = None,
    ) -> Event:
        subject = self.subject.with_(
            environment=environment,
            commit=commit,
            pipeline=pipeline,
            job=job,
            release=release,
            rollout=rollout,
            service=service,
            replica=replica,
        )
        event = Event(
            kind=kind,
            message=message,
            subject=subject,
            actor=self.actor,
            level=level,
            data=data or {},
        )
        if event.durable and self._log is not None:
            event = self._log.append(event)
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            fn(event)
        return event
