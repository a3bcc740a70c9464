"""Email over SMTP: one message per notification, to every recipient.

STARTTLS is optional (`starttls: true`; the certificate is verified against the system's CAs, or
the context the caller gives); a login needs it unless the server is on loopback, so a password
never crosses a network in clear. The subject is the notification's title.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from conveyor.errors import NotifyError
from conveyor.model.notifications import Notification

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def email_message(n: Notification, sender: str, to: Sequence[str]) -> EmailMessage:
    """The message for `n` (pure but for the Message-ID's randomness)."""
    msg = EmailMessage()
    msg["Subject"] = f"[conveyor] {n.title}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(n.ts or None, localtime=False)
    # The sender's domain: make_msgid would otherwise ask DNS for this host's name.
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "conveyor.invalid")
    msg["X-Conveyor-Event"] = n.topic
    lines = [n.text, ""]
    lines += [f"Project:     {n.project}"]
    if n.environment:
        lines += [f"Environment: {n.environment}"]
    if n.release is not None:
        lines += [f"Release:     {n.release}"]
    if n.commit:
        lines += [f"Commit:      {n.commit}"]
    lines += [f"Event:       {n.topic} ({n.state})"]
    if n.url:
        lines += ["", n.url]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class EmailNotifier:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if username is not None and not starttls and host not in _LOOPBACK:
            raise NotifyError(
                f"email via {host}: a login needs starttls: true (the password would cross "
                "the network in clear)"
            )
        self._host = host
        self._port = port
        self._sender = sender
        self._to = tuple(to)
        self._starttls = starttls
        self._login = (username, password or "") if username is not None else None
        self._timeout = timeout
        self._ssl = ssl_context

    @property
    def name(self) -> str:
        return f"email via {self._host}:{self._port}"

    def send(self, notification: Notification) -> None:
        msg = email_message(notification, self._sender, self._to)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                smtp.ehlo()
                if self._starttls:
                    smtp.starttls(context=self._ssl or ssl.create_default_context())
                    smtp.ehlo()
                if self._login is not None:
                    smtp.login(*self._login)
                smtp.send_message(msg, from_addr=self._sender, to_addrs=list(self._to))
        except smtplib.SMTPAuthenticationError as e:
            raise NotifyError(f"{self.name}: login refused ({_said(e)})") from None
        except smtplib.SMTPNotSupportedError as e:
            raise NotifyError(f"{self.name}: {e}") from None
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            refused = ", ".join(f"{who} ({code})" for who, (code, _) in e.recipients.items())
            raise NotifyError(
                f"{self.name}: recipients refused: {refused}",
                retry=all(_transient(c) for c in codes),
            ) from None
        except smtplib.SMTPResponseException as e:
            raise NotifyError(f"{self.name}: {_said(e)}", retry=_transient(e.smtp_code)) from None
        except ssl.SSLError as e:  # before OSError, its base: a bad certificate stays bad
            raise NotifyError(f"{self.name}: TLS failed: {e.reason or e}") from None
        except (smtplib.SMTPException, OSError) as e:  # refused, reset, timed out, hung up
            raise NotifyError(f"{self.name}: {e or type(e).__name__}", retry=True) from None


def _transient(code: int) -> bool:
    """SMTP's 4xx replies mean "try again later" (RFC 5321, 4.2.1)."""
    return 400 <= code < 500


def _said(e: smtplib.SMTPResponseException) -> str:
    text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else ""
    return f"{e.smtp_code} {text}".strip()
