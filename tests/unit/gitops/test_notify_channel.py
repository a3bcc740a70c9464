"""Channels and the dispatcher: bounded retries with backoff only when a retry may help, a
full queue drops instead of blocking the emitter, closing drains, and a dispatcher subscribed
to a real timeline sends each channel the topics it wants."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conveyor.errors import NotifyError
from conveyor.gitops.notify import Channel, Delivery, Dispatcher, build_dispatcher
from conveyor.gitops.notify.channel import backoff_delays
from conveyor.model.notifications import (
    TOPICS,
    EmailSpec,
    GitLabSpec,
    Notification,
    NotificationsSpec,
    WebhookSpec,
)
from tests.unit.gitops.engine_world import World

GUARD = 30.0  # seconds: only so a broken channel fails the test instead of hanging it


def note(title: str = "t") -> Notification:
    return Notification(
        topic="rollout.succeeded", title=title, text="x", level="info", state="success",
        project="shop",
    )  # fmt: skip


class Scripted:
    """Fails with the given errors first, then succeeds."""

    name = "scripted"

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.calls.append(notification)
        if self.failures:
            raise self.failures.pop(0)


class Gate:
    """Blocks in send until released: a receiver that hangs."""

    name = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sent: list[str] = []

    def send(self, notification: Notification) -> None:
        self.entered.set()
        assert self.release.wait(GUARD)
        self.sent.append(notification.title)


def run(notifier: object, close_at_once: bool = False, **options: object) -> list[Delivery]:
    """One notification through a channel; closed once it is delivered or given up (or at
    once, to see what closing does to a retry)."""
    deliveries: list[Delivery] = []
    done = threading.Event()

    def report(d: Delivery) -> None:
        deliveries.append(d)
        done.set()

    ch = Channel(notifier, frozenset(TOPICS), on_delivery=report, **options)  # type: ignore[arg-type]
    assert ch.offer(note())
    if not close_at_once:
        assert done.wait(GUARD)
    assert ch.close(GUARD)
    return deliveries


def test_retries_what_may_pass_until_it_goes_through() -> None:
    sender = Scripted(NotifyError("503", retry=True), NotifyError("timeout", retry=True))
    (d,) = run(sender, backoff=0.0)
    assert (d.ok, d.attempts, d.error) == (True, 3, None)
    assert len(sender.calls) == 3


def test_gives_up_after_the_bounded_attempts() -> None:
    sender = Scripted(*(NotifyError("503", retry=True) for _ in range(10)))
    (d,) = run(sender, backoff=0.0, attempts=4)
    assert (d.ok, d.attempts, d.error) == (False, 4, "503")
    assert len(sender.calls) == 4


def test_does_not_retry_what_will_not_pass() -> None:
    sender = Scripted(NotifyError("401 bad token"))
    (d,) = run(sender, backoff=0.0)
    assert (d.ok, d.attempts, d.error) == (False, 1, "401 bad token")


def test_a_sender_bug_is_reported_and_the_channel_goes_on() -> None:
    sender = Scripted(KeyError("oops"))
    deliveries: list[Delivery] = []
    ch = Channel(sender, frozenset(TOPICS), on_delivery=deliveries.append)
    ch.offer(note("first"))
    ch.offer(note("second"))
    assert ch.close(GUARD)
    assert [(d.notification.title, d.ok) for d in deliveries] == [
        ("first", False),
        ("second", True),
    ]
    assert deliveries[0].error == "KeyError: 'oops'"
    assert (ch.status().sent, ch.status().failed) == (1, 1)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert backoff_delays(4, 1.0, 30.0) == [1.0, 2.0, 4.0]
    assert backoff_delays(8, 1.0, 30.0) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_delays(1, 1.0, 30.0) == []


def test_a_full_queue_drops_instead_of_blocking_the_emitter() -> None:
    gate = Gate()
    deliveries: list[Delivery] = []
    ch = Channel(gate, frozenset(TOPICS), capacity=2, on_delivery=deliveries.append)
    assert ch.offer(note("1"))
    assert gate.entered.wait(GUARD)  # the worker holds "1", stuck in the receiver
    assert ch.offer(note("2")) and ch.offer(note("3"))
    assert not ch.offer(note("4"))  # returns at once: the queue holds 2
    assert ch.status().dropped == 1 and ch.status().queued == 2
    gate.release.set()
    assert ch.close(GUARD)
    assert gate.sent == ["1", "2", "3"]
    assert [d.notification.title for d in deliveries if d.dropped] == ["4"]
    assert not ch.offer(note("5"))  # closed


def test_closing_ends_a_backoff_wait() -> None:
    sender = Scripted(*(NotifyError("down", retry=True) for _ in range(10)))
    # An hour between tries: only closing can end the wait before GUARD runs out.
    (d,) = run(sender, close_at_once=True, backoff=3600.0)
    assert (d.ok, d.attempts) == (False, 1)


def test_the_dispatcher_sends_each_channel_its_topics(tmp_path: Path) -> None:
    people, statuses = Scripted(), Scripted()
    dispatcher = Dispatcher(
        [
            Channel(people, frozenset({"rollout.succeeded", "rollout.rolled_back"})),
            Channel(statuses, frozenset({"rollout.started", "rollout.succeeded"})),
        ],
        link=lambda e: f"https://conveyor.example/events/{e.id}",
    )
    world = World(tmp_path)
    unsubscribe = world.timeline.subscribe(dispatcher)
    world.deploy("1")
    world.bad.add("2")
    world.deploy("2")
    unsubscribe()
    world.bad.clear()
    world.deploy("3")  # no longer subscribed
    assert dispatcher.close(GUARD)
    assert [n.topic for n in people.calls] == ["rollout.succeeded", "rollout.rolled_back"]
    assert [n.topic for n in statuses.calls] == [
        "rollout.started",
        "rollout.succeeded",
        "rollout.started",
    ]
    assert people.calls[0].url == f"https://conveyor.example/events/{people.calls[0].event_id}"


def test_a_secret_variable_the_file_names_must_be_set() -> None:
    spec = NotificationsSpec(gitlab=GitLabSpec(url="https://g", project="1", token_env="GL_TOKEN"))
    with pytest.raises(NotifyError, match=r"gitlab\.token_env: the environment variable GL_TOKEN"):
        build_dispatcher(spec, {})
    email = NotificationsSpec(
        email=EmailSpec(
            host="127.0.0.1", sender="a@b", to=("c@d",), username_env="U", password_env="P"
        )
    )
    with pytest.raises(NotifyError, match="variable P is not set"):
        build_dispatcher(email, {"U": "me"})
    hook = NotificationsSpec(webhook=WebhookSpec(url_env="HOOK"))
    d = build_dispatcher(hook, {"HOOK": "https://hooks.example.com/T000/secret"})
    assert [c.name for c in d.channels] == ["webhook https://hooks.example.com"]
    assert d.close(GUARD)
