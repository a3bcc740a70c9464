"""What a heal corrects, in words (pure): the steps of a heal plan read back as the drift they
undo, one phrase each, for the `heal.succeeded` event and the server's `drift.corrected`.

A heal plans toward the release that serves, so each step says what had drifted:

- `remove` (crashed, exited), or `stop` (unhealthy, paused; replaced: the container changed
  behind Conveyor's back), and the `start` replacing it: `web: replica web-2-1 crashed: replaced`;
- more `start`s than replicas replaced (a replica was removed):
  `web: replica count restored (1 started)`;
- `stop` (scale down), a replica too many: `web: extra replica web-2-3 removed`;
- `route` (adopt), an HAProxy server deleted, put in maintenance, drained or given another
  weight: `web: HAProxy server web-2-1 restored (it was in maintenance)`;
- `unroute` (no container): `web: HAProxy server web-2-1 removed (no container)`;
- `frontends`, HAProxy stopped or running another configuration: `HAProxy frontends restored`;
- `network`, `address`: `network default restored`, `web: service address restored`.
"""

from __future__ import annotations

from conveyor.plan.actions import Plan, Step

_REPLACED = {
    "crashed": "crashed",
    "exited": "exited",
    "unhealthy": "unhealthy",
    "paused": "paused",
    "replaced": "changed",
}
# What an adopted server had become, by the route step's reason (plan.rollout).
_ADOPTED = {
    "adopt": "missing from HAProxy",
    "adopt: maint": "in maintenance",
    "adopt: drain": "draining",
}


def corrections(plan: Plan) -> list[str]:
    """One phrase per drift the heal `plan` corrects, in the plan's order (services first
    seen first); the router's and networks' own phrases before the services'."""
    general: list[str] = []
    by_service: dict[str, list[str]] = {}
    replaced: dict[str, int] = {}
    started: dict[str, int] = {}
    for step in plan.steps:
        phrase = _phrase(step)
        if step.kind == "start":
            started[step.service] = started.get(step.service, 0) + 1
        if step.kind in ("remove", "stop") and step.reason in _REPLACED:
            replaced[step.service] = replaced.get(step.service, 0) + 1
        if phrase is None:
            continue
        if step.service and step.kind != "address":
            by_service.setdefault(step.service, []).append(phrase)
        else:
            general.append(phrase)
    for service, count in started.items():
        restored = count - replaced.get(service, 0)
        if restored > 0:
            by_service.setdefault(service, []).append(
                f"{service}: replica count restored ({restored} started)"
            )
    return general + [p for phrases in by_service.values() for p in phrases]


def _phrase(step: Step) -> str | None:
    s, r = step.service, step.replica
    match step.kind:
        case "remove" | "stop" if step.reason in _REPLACED:
            return f"{s}: replica {r} {_REPLACED[step.reason]}: replaced"
        case "stop" if step.reason == "scale down":
            return f"{s}: extra replica {r} removed"
        case "route" if step.reason.startswith("adopt"):
            was = _ADOPTED.get(step.reason)
            if was is None:  # `adopt: weight 10`
                was = step.reason.removeprefix("adopt: ").replace("weight", "at weight", 1)
            return f"{s}: HAProxy server {r} restored (it was {was})"
        case "unroute" if step.reason == "no container":
            return f"{s}: HAProxy server {r} removed (no container)"
        case "frontends":
            return "HAProxy frontends restored"
        case "network":
            return f"network {step.network} restored"
        case "address":
            return f"{s}: service address restored"
    return None  # the steps that carry out a correction named by another step
