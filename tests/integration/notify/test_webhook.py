"""The webhook sender against a real HTTP server on loopback: Slack-compatible JSON, which
answers are worth a retry, and a URL that never shows in a message."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from conveyor.errors import NotifyError
from conveyor.gitops.notify import Channel, Delivery
from conveyor.gitops.notify.webhook import WebhookNotifier
from conveyor.model.notifications import TOPICS, Notification
from conveyor.testing.net import free_port
from tests.integration.notify.conftest import SHA, Receiver

GUARD = 30.0


def rolled_back() -> Notification:
    return Notification(
        topic="rollout.rolled_back",
        title="production: release 5 failed and was rolled back to release 4",
        text="web: replica web-5-1 is unhealthy <its healthcheck failed> & more",
        level="warning",
        state="failed",
        project="shop",
        environment="production",
        commit=SHA,
        release=5,
        url="https://conveyor.example.com/rollouts/9",
        event_id=12,
        ts=1_700_000_000.5,
    )


def test_posts_slack_compatible_json(receiver: Receiver) -> None:
    WebhookNotifier(receiver.url).send(rolled_back())
    (post,) = receiver.posts
    assert post["path"] == "/services/T000/B000/s3cr3t"
    assert post["type"] == "application/json"
    body = post["json"]
    assert body["text"] == (
        "*production: release 5 failed and was rolled back to release 4*\n"
        "web: replica web-5-1 is unhealthy &lt;its healthcheck failed&gt; &amp; more"
    )
    (attachment,) = body["attachments"]
    assert attachment["color"] == "warning"
    assert attachment["title_link"] == "https://conveyor.example.com/rollouts/9"
    assert attachment["ts"] == 1_700_000_000
    assert {f["title"]: f["value"] for f in attachment["fields"]} == {
        "Environment": "production",
        "Release": "5",
        "Commit": SHA[:12],
        "Event": "rollout.rolled_back",
    }
    assert set(body) == {"text", "attachments"}


@pytest.mark.parametrize(
    ("status", "retry"), [(503, True), (429, True), (400, False), (404, False)]
)
def test_which_answers_are_worth_a_retry(receiver: Receiver, status: int, retry: bool) -> None:
    receiver.answers.append(status)
    with pytest.raises(NotifyError) as caught:
        WebhookNotifier(receiver.url).send(rolled_back())
    assert caught.value.retry is retry
    assert str(caught.value).startswith("webhook http://127.0.0.1:")
    assert "s3cr3t" not in str(caught.value)  # the URL's path may be the secret


def test_nothing_listening_is_worth_a_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook/s3cr3t"
    with pytest.raises(NotifyError, match="cannot connect") as caught:
        WebhookNotifier(url, timeout=5).send(rolled_back())
    assert caught.value.retry and "s3cr3t" not in str(caught.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_a_receiver_that_does_not_answer_times_out(silent_port: int) -> None:
    with pytest.raises(NotifyError, match="no answer in time") as caught:
        WebhookNotifier(f"http://127.0.0.1:{silent_port}/x", timeout=0.2).send(rolled_back())
    assert caught.value.retry


def test_a_channel_retries_a_busy_receiver(receiver: Receiver) -> None:
    receiver.answers += [503, 502]
    deliveries: list[Delivery] = []
    ch = Channel(
        WebhookNotifier(receiver.url),
        frozenset(TOPICS),
        backoff=0.01,
        on_delivery=deliveries.append,
    )
    ch.offer(rolled_back())
    assert receiver.received.wait(GUARD)
    assert ch.close(GUARD)
    assert len(receiver.posts) == 3
    assert [(d.ok, d.attempts) for d in deliveries] == [(True, 3)]
