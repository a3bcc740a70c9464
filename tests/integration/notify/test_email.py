"""The email sender against a real SMTP server in process (aiosmtpd): the message, STARTTLS
with a verified certificate and a login, and which failures are worth a retry."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from conveyor.errors import NotifyError
from conveyor.gitops.notify.email import EmailNotifier
from conveyor.model.notifications import Notification
from conveyor.testing.net import free_port
from tests.integration.notify.conftest import PASSWORD, SHA, USER, Certificate, Mailbox


def live() -> Notification:
    return Notification(
        topic="rollout.succeeded",
        title="staging: release 3 is live",
        text="deploy to release 3",
        level="info",
        state="success",
        project="shop-staging",
        environment="staging",
        commit=SHA,
        release=3,
        url="https://conveyor.example.com/rollouts/7",
        ts=1_700_000_000.0,
    )


def parsed(box: Mailbox) -> EmailMessage:
    (envelope,) = box.messages
    msg = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_one_message_to_every_recipient(smtp: Mailbox) -> None:
    to = ["ops@example.com", "dev@example.com"]
    EmailNotifier("127.0.0.1", smtp.port, "conveyor@example.com", to).send(live())
    (envelope,) = smtp.messages
    assert envelope.mail_from == "conveyor@example.com"
    assert envelope.rcpt_tos == to
    msg = parsed(smtp)
    assert msg["Subject"] == "[conveyor] staging: release 3 is live"
    assert msg["From"] == "conveyor@example.com"
    assert msg["To"] == "ops@example.com, dev@example.com"
    assert msg["X-Conveyor-Event"] == "rollout.succeeded"
    assert msg["Message-ID"].endswith("@example.com>")
    body = msg.get_content().replace("\r\n", "\n")  # as it crossed the wire
    assert body.startswith("deploy to release 3\n")
    assert f"Commit:      {SHA}" in body
    assert "Release:     3" in body
    assert "https://conveyor.example.com/rollouts/7" in body


def test_starttls_and_a_login(smtp_tls: Mailbox, certificate: Certificate) -> None:
    sender = EmailNotifier(
        "127.0.0.1",
        smtp_tls.port,
        "conveyor@example.com",
        ["ops@example.com"],
        starttls=True,
        username=USER,
        password=PASSWORD,
        ssl_context=certificate.client_context(),
    )
    sender.send(live())
    assert parsed(smtp_tls)["Subject"] == "[conveyor] staging: release 3 is live"


def test_a_wrong_password_is_not_retried(smtp_tls: Mailbox, certificate: Certificate) -> None:
    sender = EmailNotifier(
        "127.0.0.1",
        smtp_tls.port,
        "conveyor@example.com",
        ["ops@example.com"],
        starttls=True,
        username=USER,
        password="wrong",
        ssl_context=certificate.client_context(),
    )
    with pytest.raises(NotifyError, match="login refused") as caught:
        sender.send(live())
    assert not caught.value.retry
    assert "wrong" not in str(caught.value)
    assert smtp_tls.messages == []


def test_an_untrusted_certificate_is_refused(smtp_tls: Mailbox) -> None:
    # The system's CAs do not know the test's self-signed certificate.
    sender = EmailNotifier(
        "127.0.0.1", smtp_tls.port, "a@example.com", ["b@example.com"], starttls=True,
        username=USER, password=PASSWORD,
    )  # fmt: skip
    with pytest.raises(NotifyError, match="TLS failed") as caught:
        sender.send(live())
    assert not caught.value.retry


def test_without_starttls_a_server_that_requires_it_refuses(smtp_tls: Mailbox) -> None:
    sender = EmailNotifier("127.0.0.1", smtp_tls.port, "a@example.com", ["b@example.com"])
    with pytest.raises(NotifyError, match="530") as caught:
        sender.send(live())
    assert not caught.value.retry


def test_a_4xx_reply_is_worth_a_retry(smtp: Mailbox) -> None:
    smtp.reply = "451 Requested action aborted: local error in processing"
    with pytest.raises(NotifyError, match="451") as caught:
        EmailNotifier("127.0.0.1", smtp.port, "a@example.com", ["b@example.com"]).send(live())
    assert caught.value.retry


def test_a_5xx_reply_is_not(smtp: Mailbox) -> None:
    smtp.reply = "554 Transaction failed"
    with pytest.raises(NotifyError, match="554") as caught:
        EmailNotifier("127.0.0.1", smtp.port, "a@example.com", ["b@example.com"]).send(live())
    assert not caught.value.retry


def test_no_server_is_worth_a_retry() -> None:
    sender = EmailNotifier("127.0.0.1", free_port(), "a@example.com", ["b@example.com"])
    with pytest.raises(NotifyError) as caught:
        sender.send(live())
    assert caught.value.retry


def test_a_password_never_crosses_a_network_in_clear() -> None:
    with pytest.raises(NotifyError, match="a login needs starttls: true"):
        EmailNotifier("smtp.example.com", 25, "a@b", ["c@d"], username="u", password="p")
