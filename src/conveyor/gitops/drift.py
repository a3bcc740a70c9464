"""Drift as the server reports it (pure): each correction an environment's reconciler makes
(`heal.succeeded`) is told as one `drift.corrected` event naming the environment and what was
corrected (`plan.drift.corrections`: a replica replaced, the replica count restored, an
HAProxy server restored…).

The heal event is replaced, not joined: notifications map both kinds to the topic
`drift.corrected` (gitops/notify/message.py), so sending both would tell people twice.
"""

from __future__ import annotations

from conveyor.model.events import Event


def drift_event(heal: Event, noticed: str = "") -> Event:
    """The `drift.corrected` event a `heal.succeeded` event is, with the same subject, actor,
    time and id. data: `services`, `corrections` (one phrase each), `what` (them joined), and
    `noticed` when given: what made the server look (`Docker event: destroy of web-2-1`, or
    `heal interval`)."""
    corrections = [str(c) for c in heal.data.get("corrections") or []]
    services = [str(s) for s in heal.data.get("services") or []]
    what = "; ".join(corrections) or f"healed {', '.join(services) or 'the project'}"
    env = heal.subject.environment or heal.subject.project
    return heal.model_copy(
        update={
            "kind": "drift.corrected",
            "message": f"{env}: drift corrected: {what}",
            "data": {
                **heal.data,
                "services": services,
                "corrections": corrections,
                "what": what,
                **({"noticed": noticed} if noticed else {}),
            },
        }
    )
