"""Alertmanager's HTTP API v2, as `conveyor alerts` asks it: the alerts it holds now
(`GET /api/v2/alerts`: firing ones, silenced and inhibited ones included), and whether it is
ready (`GET /-/ready`)."""

from __future__ import annotations

from typing import Any

import requests

from conveyor.errors import AlertsError
from conveyor.model.alerts import Alert
from conveyor.observe.metrics.alerts import PayloadError, alert_from


class AlertmanagerAPI:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def alerts(self) -> list[Alert]:
        """Every alert Alertmanager holds, oldest first: `firing` (active, or not yet
        processed) or `suppressed` (silenced or inhibited, with by what)."""
        params = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
        body = self._get("/api/v2/alerts", params)
        if not isinstance(body, list):
            raise AlertsError(f"Alertmanager at {self.url} answered alerts that are not a list")
        out = []
        for item in body:
            try:
                out.append(_alert(item))
            except PayloadError as e:
                raise AlertsError(f"Alertmanager at {self.url} answered an alert: {e}") from e
        return sorted(out, key=lambda a: (a.starts_at, a.name))

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except requests.RequestException:
            return False

    def _get(self, path: str, params: dict[str, str]) -> Any:
        try:
            answer = requests.get(self.url + path, params=params, timeout=self.timeout)
        except requests.RequestException as e:
            raise AlertsError(
                f"Alertmanager does not answer at {self.url} ({e.__class__.__name__}): is the "
                "project up with metrics on? (`conveyor status` lists it)"
            ) from e
        if answer.status_code != 200:
            said = answer.text.strip()[:300]
            raise AlertsError(f"Alertmanager refused {path} (HTTP {answer.status_code}): {said}")
        try:
            return answer.json()
        except ValueError as e:
            raise AlertsError(f"Alertmanager answered {path} with what is not JSON") from e


def _alert(item: Any) -> Alert:
    if not isinstance(item, dict):
        raise PayloadError("an alert is not an object")
    written = item.get("status")
    status: dict[str, Any] = written if isinstance(written, dict) else {}
    silenced = tuple(str(s) for s in status.get("silencedBy") or ())
    inhibited = tuple(str(s) for s in status.get("inhibitedBy") or ())
    alert = alert_from(item, "firing")
    suppressed = status.get("state") == "suppressed" or bool(silenced or inhibited)
    return alert.model_copy(
        update={
            "state": "suppressed" if suppressed else "firing",
            "silenced_by": silenced,
            "inhibited_by": inhibited,
        }
    )
