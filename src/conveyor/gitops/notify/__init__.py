"""Notifications: what happened, told to people and to GitLab.

`message.notification(event)` decides (pure) whether a timeline event is news and what it says;
senders behind `protocol.Notifier` deliver it — a Slack-compatible webhook (`webhook`), email
over SMTP (`email`), GitLab commit statuses (`gitlab_status`); each sits in a `channel.Channel`
(bounded queue, worker thread, bounded retries); `dispatch.Dispatcher` subscribes to a timeline
and fans out. docs/notifications.md is the user's side of it.
"""

from conveyor.gitops.notify.channel import Channel, ChannelStatus, Delivery
from conveyor.gitops.notify.dispatch import Dispatcher, build_dispatcher, notifiers
from conveyor.gitops.notify.message import notification
from conveyor.gitops.notify.protocol import Notifier

__all__ = [
    "Channel",
    "ChannelStatus",
    "Delivery",
    "Dispatcher",
    "Notifier",
    "build_dispatcher",
    "notification",
    "notifiers",
]
