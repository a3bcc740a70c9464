"""Alertmanager's webhook deliveries read, and turned into news: which alerts started firing
and which resolved since the last delivery. Pure (no I/O).

Alertmanager sends a group's *whole* state each time it notifies (every alert of the group,
firing and resolved), again when the group changes and again every repeat interval. People
want each start and each end once: `AlertTracker` remembers, per alert (its fingerprint), the
firing it last told of, and `changes()` returns only what is new. It is kept in memory: after
a restart of the receiving process, an alert still firing is told once more at its next
delivery.

The payload (version 4, Alertmanager's documented webhook format):
`{"version": "4", "status": "firing|resolved", "receiver", "groupKey", "groupLabels",
"commonLabels", "commonAnnotations", "externalURL", "truncatedAlerts", "alerts": [{"status",
"labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}]}`.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from conveyor.model.alerts import Alert

_FRACTION = re.compile(r"\.(\d+)")
MAX_TRACKED = 10_000  # alerts remembered; the oldest resolved ones are forgotten first


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook delivery."""


@dataclass(frozen=True)
class Delivery:
    receiver: str
    status: str  # the group's: firing while any of its alerts fires
    group_key: str
    external_url: str
    alerts: tuple[Alert, ...]
    truncated: int  # alerts Alertmanager left out (max_alerts)


def timestamp(text: object) -> float | None:
    """An RFC 3339 time as UNIX seconds; None for Go's zero time (`0001-01-01T00:00:00Z`,
    Alertmanager's "no end yet") and for what is not a time."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    written = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Go writes up to nine fractional digits; Python reads six.
    fraction = _FRACTION.search(written)
    if fraction is not None:
        digits = fraction.group(1)[:6].ljust(6, "0")
        written = written[: fraction.start()] + f".{digits}" + written[fraction.end() :]
    try:
        return datetime.fromisoformat(written).timestamp()
    except ValueError:
        return None


def _strings(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{field} is not an object")
    return {str(k): str(v) for k, v in value.items()}


def alert_from(item: object, state: Literal["firing", "resolved"] | None = None) -> Alert:
    """One alert object of a webhook delivery (or of API v2 with `state` given)."""
    if not isinstance(item, dict):
        raise PayloadError("an alert is not an object")
    labels = _strings(item.get("labels"), "alert labels")
    if "alertname" not in labels:
        raise PayloadError("an alert has no alertname label")
    status = state or item.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"an alert's status is {status!r}, not firing or resolved")
    starts = timestamp(item.get("startsAt"))
    if starts is None:
        raise PayloadError(f"alert {labels['alertname']}: startsAt is not a time")
    return Alert(
        labels=labels,
        annotations=_strings(item.get("annotations"), "alert annotations"),
        state=status,
        starts_at=starts,
        ends_at=timestamp(item.get("endsAt")) if status == "resolved" else None,
        fingerprint=str(item.get("fingerprint") or ""),
        generator_url=str(item["generatorURL"]) if item.get("generatorURL") else None,
    )


def parse_delivery(body: bytes) -> Delivery:
    """A webhook body as a Delivery. Raises PayloadError saying what is wrong."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError(f"the body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PayloadError("the body is not a JSON object")
    if str(doc.get("version", "")) != "4":
        raise PayloadError(
            f"webhook payload version {doc.get('version')!r}: Conveyor reads version 4 "
            "(Alertmanager 0.16 and later)"
        )
    items = doc.get("alerts")
    if not isinstance(items, list):
        raise PayloadError("'alerts' is not a list")
    truncated = doc.get("truncatedAlerts") or 0
    return Delivery(
        receiver=str(doc.get("receiver", "")),
        status=str(doc.get("status", "")),
        group_key=str(doc.get("groupKey", "")),
        external_url=str(doc.get("externalURL", "")),
        alerts=tuple(alert_from(item) for item in items),
        truncated=int(truncated) if isinstance(truncated, int) else 0,
    )


def key(alert: Alert) -> str:
    """An alert's identity: Alertmanager's fingerprint, else its sorted labels."""
    if alert.fingerprint:
        return alert.fingerprint
    return json.dumps(sorted(alert.labels.items()))


@dataclass(frozen=True)
class Change:
    kind: Literal["alert.firing", "alert.resolved"]
    alert: Alert


class AlertTracker:
    """What has been told, per alert: the start time of the firing last announced, or None
    once its end was. Not thread-safe: the receiver calls it under its lock."""

    def __init__(self, capacity: int = MAX_TRACKED) -> None:
        self.capacity = capacity
        self._told: OrderedDict[str, float | None] = OrderedDict()

    def changes(self, alerts: tuple[Alert, ...] | list[Alert]) -> list[Change]:
        """The alerts of a delivery that are news: a firing not told yet (new, or firing
        again after it resolved: a new startsAt), and the end of one told as firing. An end
        of an alert never told as firing (the receiver restarted, or it fired and resolved
        between two deliveries) is told too: someone may have seen it elsewhere."""
        out: list[Change] = []
        for alert in alerts:
            k = key(alert)
            known = self._told.get(k, "unknown")
            if alert.state == "resolved":
                if known is not None:  # firing (a start time) or unknown
                    out.append(Change("alert.resolved", alert))
                self._remember(k, None)
            elif known != alert.starts_at:
                out.append(Change("alert.firing", alert))
                self._remember(k, alert.starts_at)
        return out

    def _remember(self, k: str, value: float | None) -> None:
        self._told[k] = value
        self._told.move_to_end(k)
        while len(self._told) > self.capacity:
            self._told.popitem(last=False)
