"""The dispatcher: a timeline subscriber that turns each event into a notification (or none)
and hands it to every channel that wants its topic.

    dispatcher = build_dispatcher(config.notifications, os.environ)
    unsubscribe = timeline.subscribe(dispatcher)
    ...
    unsubscribe(); dispatcher.close()

Secrets are read here, from the environment mapping the entry point passes in, never from the
file: a variable the file names but the environment lacks is an error at start, not a silent
channel that never sends.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor.errors import NotifyError
from conveyor.gitops.notify.channel import Channel, ChannelStatus, Delivery
from conveyor.gitops.notify.email import EmailNotifier
from conveyor.gitops.notify.gitlab_status import GitLabStatusNotifier
from conveyor.gitops.notify.message import notification
from conveyor.gitops.notify.protocol import Notifier
from conveyor.gitops.notify.webhook import WebhookNotifier
from conveyor.model.events import Event
from conveyor.model.notifications import NotificationsSpec, Topic

Link = Callable[[Event], str | None]


class Dispatcher:
    def __init__(self, channels: Sequence[Channel], link: Link | None = None) -> None:
        """`link(event)`: where a reader learns more (the server's page for it), if anywhere."""
        self.channels = list(channels)
        self._link = link
        self.errors = 0  # events whose notification could not even be built (a bug)

    def __call__(self, event: Event) -> None:
        """Called inside `Timeline.emit`: never blocks, never raises."""
        try:
            n = notification(event, self._link(event) if self._link else None)
        except Exception:  # a rollout must not fail because a message could not be worded
            self.errors += 1
            return
        if n is None:
            return
        for channel in self.channels:
            if channel.wants(n):
                channel.offer(n)

    def close(self, timeout: float = 10.0) -> bool:
        """Send what is queued and stop every channel; True when all stopped in time."""
        return all([channel.close(timeout) for channel in self.channels])

    def status(self) -> list[ChannelStatus]:
        return [channel.status() for channel in self.channels]


def notifiers(
    spec: NotificationsSpec,
    environ: Mapping[str, str],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> list[tuple[Notifier, frozenset[Topic]]]:
    """The senders the spec configures, with the topics each wants. Raises NotifyError when a
    variable the spec names is not set."""
    out: list[tuple[Notifier, frozenset[Topic]]] = []
    if (w := spec.webhook) is not None:
        url = w.url or _secret(environ, w.url_env, "notifications.webhook.url_env", "the URL")
        out.append((WebhookNotifier(url, timeout=w.timeout), w.events))
    if (m := spec.email) is not None:
        username = password = None
        if m.username_env is not None:
            field = "notifications.email.username_env"
            username = _secret(environ, m.username_env, field, "the SMTP user")
        if m.password_env is not None:
            field = "notifications.email.password_env"
            password = _secret(environ, m.password_env, field, "the SMTP password")
        sender = EmailNotifier(
            m.host,
            m.port,
            m.sender,
            m.to,
            starttls=m.starttls,
            username=username,
            password=password,
            timeout=m.timeout,
            ssl_context=ssl_context,
        )
        out.append((sender, m.events))
    if (g := spec.gitlab) is not None:
        field = "notifications.gitlab.token_env"
        token = _secret(environ, g.token_env, field, "the GitLab access token")
        out.append((GitLabStatusNotifier(g.url, g.project, token, g.timeout), g.events))
    return out


def build_dispatcher(
    spec: NotificationsSpec,
    environ: Mapping[str, str],
    *,
    link: Link | None = None,
    on_delivery: Callable[[Delivery], None] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **channel_options: Any,
) -> Dispatcher:
    """A dispatcher with one channel per configured sender. `on_delivery` hears of every
    notification sent, given up or dropped (the server logs it); `channel_options` tune the
    channels (capacity, attempts, backoff, max_backoff)."""
    channels = [
        Channel(sender, topics, on_delivery=on_delivery, **channel_options)
        for sender, topics in notifiers(spec, environ, ssl_context=ssl_context)
    ]
    return Dispatcher(channels, link)


def _secret(environ: Mapping[str, str], name: str | None, field: str, what: str) -> str:
    value = environ.get(name or "")
    if not value:
        raise NotifyError(
            f"{field}: the environment variable {name} is not set (it holds {what}); "
            "set it in the server's environment (or its systemd EnvironmentFile)"
        )
    return value
