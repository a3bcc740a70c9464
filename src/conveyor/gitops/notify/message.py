"""Which timeline events people are told about, and what they are told (pure).

| event kind | when | topic | state |
|---|---|---|---|
| `pipeline.started` | | `pipeline.started` | running |
| `pipeline.finished` | status success | `pipeline.succeeded` | success |
| `pipeline.finished` | status failed | `pipeline.failed` | failed |
| `pipeline.finished` | status canceled | `pipeline.canceled` | canceled |
| `pipeline.finished` | canceled by a newer commit | `pipeline.canceled` (info) | canceled |
| `rollout.started` | kind up, deploy, recover | `rollout.started` | running |
| `rollout.started` | kind rollback | `rollback.started` | running |
| `rollout.succeeded` | kind up, deploy, recover | `rollout.succeeded` | success |
| `rollout.succeeded` | kind rollback | `rollback.succeeded` | success |
| `rollout.failed` | kind up, deploy, recover | `rollout.failed` | failed |
| `rollout.failed` | kind rollback | `rollback.failed` | failed |
| `rollout.rolled_back` | | `rollout.rolled_back` | failed |
| `rollout.paused` | | `rollout.paused` | failed |
| `heal.succeeded`, `drift.corrected` | | `drift.corrected` | success |
| `heal.failed` | | `drift.failed` | failed |
| `promotion.succeeded` | | `promotion.succeeded` | success |
| `promotion.failed` | | `promotion.failed` | failed |
| `signature.rejected` | | `signature.rejected` | failed |
| `check.changed` | data.type PROBLEM | `check.problem` | failed |
| `check.changed` | data.type RECOVERY | `check.recovered` | success |
| `checks.restarted` | | `checks.restarted` | failed |
| `alert.firing` | an Alertmanager alert started | `alert.firing` | failed |
| `alert.resolved` | it ended | `alert.resolved` | success |

Left out on purpose: the rollout events of an automatic rollback (`data.undoes` set) and a
`rollout.failed` that a rollback follows (`data.rolling_back`): the `rollout.rolled_back` (or
the second `rollout.failed`) after them tells the whole story once. A `pipeline.canceled` event
is followed by the pipeline's `pipeline.finished` (canceled), which is the one sent. Every other
kind (steps, job output, notes, reconciler chatter) is not news. Nagios itself holds back the
notifications of a flapping check and of one in a scheduled downtime; those it sends instead
(flapping started, downtime started) are `check.note` events: recorded, not sent.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.checks import check_subject
from conveyor.model.events import Event, Level
from conveyor.model.notifications import Notification, State, Topic

_PIPELINE: dict[str, tuple[Topic, State, Level, str]] = {
    "success": ("pipeline.succeeded", "success", "info", "passed"),
    "failed": ("pipeline.failed", "failed", "error", "failed"),
    "canceled": ("pipeline.canceled", "canceled", "warning", "was canceled"),
}


def notification(event: Event, url: str | None = None) -> Notification | None:
    """What `event` tells people, or None when it is not news. `url`: where to read more."""
    found = _classify(event)
    if found is None:
        return None
    topic, state, level, title = found
    s = event.subject
    return Notification(
        topic=topic,
        title=f"{s.environment or s.project}: {title}",
        text=_text(event),
        level=level,
        state=state,
        project=s.project,
        environment=s.environment,
        commit=s.commit,
        release=s.release,
        url=url if url is not None else _str(event.data.get("url")),
        event_id=event.id,
        ts=event.ts,
    )


def _classify(e: Event) -> tuple[Topic, State, Level, str] | None:  # noqa: PLR0912 — an arm per kind
    d = e.data
    match e.kind:
        case "pipeline.started":
            return "pipeline.started", "running", "info", f"pipeline #{e.subject.pipeline} started"
        case "pipeline.finished":
            found = _PIPELINE.get(str(d.get("status")))
            if found is None:  # manual, skipped: nothing ran to an outcome
                return None
            topic, state, level, verb = found
            newer = _str(d.get("superseded_by"))
            if topic == "pipeline.canceled" and newer:  # latest commit wins: not a failure
                what = f"pipeline #{e.subject.pipeline} superseded by {newer[:12]}"
                return topic, state, "info", what
            return topic, state, level, f"pipeline #{e.subject.pipeline} {verb}"
        case "rollout.started" | "rollout.succeeded" | "rollout.failed" if d.get("undoes"):
            return None
        case "rollout.failed" if d.get("rolling_back"):
            return None
        case "rollout.started" | "rollout.succeeded" | "rollout.failed":
            return _rollout(e.kind.removeprefix("rollout."), d.get("kind"), e.subject.release)
        case "rollout.rolled_back":
            back = d.get("to_release")
            to = f" to release {back}" if back is not None else ""
            what = f"release {e.subject.release} failed and was rolled back{to}"
            return "rollout.rolled_back", "failed", "warning", what
        case "rollout.paused":
            return "rollout.paused", "failed", "warning", f"release {e.subject.release} paused"
        case "heal.succeeded" | "drift.corrected":
            return "drift.corrected", "success", "info", f"drift corrected{_services(d, e)}"
        case "heal.failed":
            return "drift.failed", "failed", "error", f"drift not corrected{_services(d, e)}"
        case "promotion.succeeded":
            what = f"release {e.subject.release} promoted{_from(d)}"
            return "promotion.succeeded", "success", "info", what
        case "promotion.failed":
            return "promotion.failed", "failed", "error", f"promotion{_from(d)} failed"
        case "signature.rejected":
            commit = (e.subject.commit or "?")[:12]
            what = f"commit {commit} not deployed: its signature was rejected"
            return "signature.rejected", "failed", "error", what
        case "alert.firing" | "alert.resolved":
            return _alert(e)
        case "check.changed":
            return _check(d)
        case "checks.restarted":
            return "checks.restarted", "failed", "warning", "Nagios was down and was restarted"
    return None


# A check's state -> how loud its notification is.
_CHECK_LEVELS: dict[str, Level] = {
    "CRITICAL": "error",
    "DOWN": "error",
    "UNREACHABLE": "error",
    "WARNING": "warning",
    "UNKNOWN": "warning",
}


def _check(d: dict[str, Any]) -> tuple[Topic, State, Level, str] | None:
    """A check's PROBLEM or RECOVERY; a notification still covered by a downtime is not news
    (Nagios sends none then, this only keeps a forwarded one from being told)."""
    if d.get("downtime"):
        return None
    what = check_subject(str(d.get("host")), d.get("check") or None, d.get("kind"))
    state = str(d.get("state"))
    if d.get("type") == "PROBLEM":
        return "check.problem", "failed", _CHECK_LEVELS.get(state, "warning"), f"{what} is {state}"
    if d.get("type") == "RECOVERY":
        return "check.recovered", "success", "info", f"{what} is {state} again"
    return None


# An alert's severity label (render.prometheus_rules) -> how loud its firing is.
_ALERT_LEVELS: dict[str, Level] = {"page": "error", "ticket": "warning"}


def _alert(e: Event) -> tuple[Topic, State, Level, str]:
    name = _str(e.data.get("alertname")) or "alert"
    where = f" ({e.subject.service})" if e.subject.service else ""
    if e.kind == "alert.resolved":
        return "alert.resolved", "success", "info", f"{name}{where} resolved"
    level = _ALERT_LEVELS.get(str(e.data.get("severity")), "warning")
    return "alert.firing", "failed", level, f"{name}{where} firing"


def _text(e: Event) -> str:
    """What happened: the event's message; an alert's description follows its summary."""
    if e.kind.startswith("alert."):
        annotations = e.data.get("annotations")
        described = annotations.get("description") if isinstance(annotations, dict) else None
        if isinstance(described, str) and described and described != e.message:
            return f"{e.message}\n{described}"
    return e.message


def _rollout(
    outcome: str, kind: object, release: int | None
) -> tuple[Topic, State, Level, str] | None:
    rollback = kind == "rollback"
    if outcome == "started":
        title = f"rolling back to release {release}" if rollback else f"deploying release {release}"
        return ("rollback.started" if rollback else "rollout.started"), "running", "info", title
    if outcome == "succeeded":
        title = f"rolled back to release {release}" if rollback else f"release {release} is live"
        return ("rollback.succeeded" if rollback else "rollout.succeeded"), "success", "info", title
    title = (
        f"rollback to release {release} failed"
        if rollback
        else f"deploy of release {release} failed"
    )
    return ("rollback.failed" if rollback else "rollout.failed"), "failed", "error", title


def _services(d: dict[str, Any], e: Event) -> str:
    names = d.get("services") or ([e.subject.service] if e.subject.service else [])
    return f" ({', '.join(str(n) for n in names)})" if names else ""


def _from(d: dict[str, Any]) -> str:
    source = d.get("from")
    return f" from {source}" if source else ""


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
