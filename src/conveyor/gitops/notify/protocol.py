"""The one seam every notification sender sits behind."""

from __future__ import annotations

from typing import Protocol

from conveyor.model.notifications import Notification


class Notifier(Protocol):
    """Sends one notification, synchronously (the channel's worker thread calls it).

    Raises `NotifyError`; its `retry` says whether the same call may succeed later. Never
    blocks longer than its own timeout."""

    @property
    def name(self) -> str:
        """How reports name this sender: `webhook https://hooks.example.com`, `email`…"""
        ...

    def send(self, notification: Notification) -> None: ...
