"""Alertmanager's silences (`GET /api/v2/silences`), for the dashboard's alerts page: who
silenced what, until when. Expired silences are left out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from conveyor.errors import AlertsError


@dataclass(frozen=True)
class Silence:
    id: str
    state: str  # active, pending (starts later)
    matchers: tuple[str, ...]  # `alertname="HighErrorRate"`, `service=~"web|api"`
    starts_at: float  # UNIX seconds
    ends_at: float
    created_by: str
    comment: str


def _ts(text: Any) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def _matcher(m: Any) -> str:
    equal = bool(m.get("isEqual", True))
    regex = bool(m.get("isRegex", False))
    op = ("=~" if regex else "=") if equal else ("!~" if regex else "!=")
    return f'{m.get("name", "")}{op}"{m.get("value", "")}"'


def silence_of(item: Any) -> Silence | None:
    """One silence of Alertmanager's answer (None: expired, or not a silence)."""
    if not isinstance(item, dict):
        return None
    state = str((item.get("status") or {}).get("state", ""))
    if state not in ("active", "pending"):
        return None
    try:
        return Silence(
            id=str(item.get("id", "")),
            state=state,
            matchers=tuple(_matcher(m) for m in item.get("matchers") or [] if isinstance(m, dict)),
            starts_at=_ts(item["startsAt"]),
            ends_at=_ts(item["endsAt"]),
            created_by=str(item.get("createdBy", "")),
            comment=str(item.get("comment", "")),
        )
    except (KeyError, ValueError):
        return None


def silences(url: str, timeout: float = 5.0) -> list[Silence]:
    """The active and pending silences of the Alertmanager at `url`, ending soonest first."""
    base = url.rstrip("/")
    try:
        answer = requests.get(f"{base}/api/v2/silences", timeout=timeout)
    except requests.RequestException as e:
        raise AlertsError(f"Alertmanager does not answer at {base} ({e.__class__.__name__})") from e
    if answer.status_code != 200:
        raise AlertsError(f"Alertmanager refused its silences (HTTP {answer.status_code})")
    try:
        body = answer.json()
    except ValueError as e:
        raise AlertsError("Alertmanager answered its silences with what is not JSON") from e
    found = (
        [s for s in (silence_of(i) for i in body if body) if s is not None]
        if isinstance(body, list)
        else []
    )
    return sorted(found, key=lambda s: s.ends_at)
