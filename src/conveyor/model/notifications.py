"""Notifications: who is told what happened (the `notifications:` section of conveyor.yaml)
and the message one timeline event becomes.

A `Topic` names what a notification is about (`rollout.failed`, `drift.corrected`…); each
channel (a webhook, email, GitLab commit statuses) lists the topics it wants in `events:`, or
takes its default set. Secrets are never in the file: the file names the environment variables
that hold them (`token_env`, `password_env`, `url_env`).
"""

from __future__ import annotations

from typing import Literal, get_args

from conveyor.model.events import Level
from conveyor.model.frozen import Frozen

Topic = Literal[
    "pipeline.started",
    "pipeline.succeeded",
    "pipeline.failed",
    "pipeline.canceled",
    "rollout.started",
    "rollout.succeeded",
    "rollout.failed",
    "rollout.rolled_back",
    "rollout.paused",
    "rollback.started",
    "rollback.succeeded",
    "rollback.failed",
    "drift.corrected",
    "drift.failed",
    "promotion.succeeded",
    "promotion.failed",
    "signature.rejected",
    "check.problem",
    "check.recovered",
    "checks.restarted",
    "alert.firing",
    "alert.resolved",
]
TOPICS: tuple[Topic, ...] = get_args(Topic)

# Something started: a commit status wants it ("running"), a chat room or a mailbox does not.
PROGRESS: frozenset[Topic] = frozenset(t for t in TOPICS if t.endswith(".started"))
# Webhooks and email: every outcome, no progress.
OUTCOMES: frozenset[Topic] = frozenset(TOPICS) - PROGRESS
# GitLab commit statuses describe a commit's pipeline and deploys; a drift correction, a
# check's state or an alert is not news about a commit.
COMMIT_TOPICS: frozenset[Topic] = frozenset(
    t for t in TOPICS if not t.startswith(("drift.", "check.", "checks.", "alert."))
)

# GitLab's commit status states (POST /projects/:id/statuses/:sha).
State = Literal["pending", "running", "success", "failed", "canceled"]


class Notification(Frozen):
    """What one event tells people; the senders format it for their medium."""

    topic: Topic
    title: str  # one line: an email's subject, a chat message's first line
    text: str  # what happened, in a sentence or two
    level: Level
    state: State  # the commit status this outcome amounts to
    project: str
    environment: str | None = None
    commit: str | None = None
    release: int | None = None
    url: str | None = None  # where to read more (the server's page), when one is known
    event_id: int = 0  # the timeline event it came from (0: an ephemeral one)
    ts: float = 0.0


class WebhookSpec(Frozen):
    """A Slack-compatible incoming webhook (or any endpoint taking its JSON)."""

    url: str | None = None  # written in the file; a Slack URL is a secret: prefer url_env
    url_env: str | None = None  # the environment variable holding the URL
    events: frozenset[Topic] = OUTCOMES
    timeout: float = 10.0  # seconds per attempt


class EmailSpec(Frozen):
    host: str
    port: int = 25
    sender: str  # `from:` in the file
    to: tuple[str, ...]
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    events: frozenset[Topic] = OUTCOMES
    timeout: float = 30.0  # seconds per attempt


class GitLabSpec(Frozen):
    url: str  # the GitLab instance, e.g. https://gitlab.example.com
    project: str  # numeric id or full path (group/app)
    token_env: str  # the environment variable holding an access token (scope: api)
    events: frozenset[Topic] = COMMIT_TOPICS
    timeout: float = 10.0


class NotificationsSpec(Frozen):
    webhook: WebhookSpec | None = None
    email: EmailSpec | None = None
    gitlab: GitLabSpec | None = None

    @property
    def empty(self) -> bool:
        return self.webhook is None and self.email is None and self.gitlab is None
