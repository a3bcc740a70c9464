"""A generic webhook: one HTTP POST of Slack-compatible JSON per notification.

The body is what a Slack incoming webhook takes: `text` (mrkdwn: the title in bold, then what
happened) and one legacy `attachments` entry with a colour by level and short fields
(environment, release, commit, event), which Mattermost and Rocket.Chat read too. Any other
receiver gets the same JSON. The URL is treated as a secret (Slack's are): messages name only
its scheme and host.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from conveyor.errors import NotifyError
from conveyor.model.notifications import Notification

_COLOURS = {"debug": "#999999", "info": "good", "warning": "warning", "error": "danger"}
# Statuses worth another try: the receiver is busy, rate-limiting or briefly broken.
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


def slack_payload(n: Notification) -> dict[str, Any]:
    """The JSON body for `n` (pure)."""
    fields = [
        ("Environment", n.environment or n.project),
        ("Release", str(n.release) if n.release is not None else None),
        ("Commit", n.commit[:12] if n.commit else None),
        ("Event", n.topic),
    ]
    attachment: dict[str, Any] = {
        "color": _COLOURS[n.level],
        "fallback": n.title,
        "fields": [
            {"title": title, "value": _escape(value), "short": True}
            for title, value in fields
            if value
        ],
    }
    if n.url:
        attachment["title"] = "Details"
        attachment["title_link"] = n.url
    if n.ts:
        attachment["ts"] = int(n.ts)
    return {"text": f"*{_escape(n.title)}*\n{_escape(n.text)}", "attachments": [attachment]}


def _escape(text: str) -> str:
    """Slack reads `<`, `>` and `&` as markup (links, mentions): these three are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shown_url(url: str) -> str:
    """The URL as messages may show it: scheme and host only (the path may be the secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookNotifier:
    def __init__(
        self, url: str, timeout: float = 10.0, session: requests.Session | None = None
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._session = session or requests.Session()

    @property
    def name(self) -> str:
        return f"webhook {shown_url(self._url)}"

    def send(self, notification: Notification) -> None:
        try:
            answer = self._session.post(
                self._url,
                json=slack_payload(notification),
                timeout=self._timeout,
                allow_redirects=False,  # a redirect would re-send the body elsewhere
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            raise NotifyError(f"{self.name}: {_reason(e)}", retry=True) from None
        except requests.RequestException as e:
            raise NotifyError(f"{self.name}: {_reason(e)}") from None
        if 200 <= answer.status_code < 300:
            return
        said = answer.text.strip().replace("\n", " ")[:200]
        raise NotifyError(
            f"{self.name} answered {answer.status_code}" + (f": {said}" if said else ""),
            retry=answer.status_code in _TRANSIENT,
        )


def _reason(e: requests.RequestException) -> str:
    """The exception's kind, not its text: requests puts the whole URL in its messages."""
    if isinstance(e, requests.Timeout):
        return "no answer in time"
    if isinstance(e, requests.ConnectionError):
        return "cannot connect"
    return type(e).__name__
