"""When a replica that exited is started again: Compose `restart` or `deploy.restart_policy`.

`restart` wins when both are written, as in Docker Compose. Nothing written leaves the model
at None, which Conveyor reads as "always": an agent that heals is the point of running it.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.stack import Restart, RestartCondition
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.values import suggest, to_int
from conveyor.spec.yamlpos import YamlPath

_RESTART: dict[str, RestartCondition] = {
    "no": "no",
    "always": "always",
    "on-failure": "on-failure",
    "unless-stopped": "unless-stopped",
}
# deploy.restart_policy.condition (Swarm's words) -> the `restart` it means.
_CONDITIONS: dict[str, RestartCondition] = {
    "none": "no",
    "on-failure": "on-failure",
    "any": "always",
}


def restart_policy(ctx: Context, path: YamlPath, raw: dict[str, Any]) -> Restart | None:
    written = raw.get("restart")
    if written is not None:
        return _restart(ctx, (*path, "restart"), written)
    policy = (raw.get("deploy") or {}).get("restart_policy")
    if policy is None:
        return None
    where = (*path, "deploy", "restart_policy")
    condition = policy.get("condition", "any")
    if condition not in _CONDITIONS:
        choices = ", ".join(f"'{c}'" for c in _CONDITIONS)
        ctx.error(
            (*where, "condition"),
            f"must be one of {choices}, got '{condition}'{suggest(str(condition), _CONDITIONS)}",
        )
        return None
    return Restart(
        condition=_CONDITIONS[condition],
        max_attempts=ctx.optional(policy, "max_attempts", where, to_int, None),
        delay=ctx.optional(policy, "delay", where, parse_duration, 0.0),
        window=ctx.optional(policy, "window", where, parse_duration, 0.0),
    )


def _restart(ctx: Context, path: YamlPath, written: Any) -> Restart | None:
    text = str(written)
    name, _, attempts = text.partition(":")
    condition = _RESTART.get(name)
    if condition is None or (attempts and condition != "on-failure"):
        choices = ", ".join(f"'{c}'" for c in _RESTART)
        hint = suggest(text, _RESTART)
        ctx.error(path, f"must be one of {choices} (or 'on-failure:N'), got '{text}'{hint}")
        return None
    if not attempts:
        return Restart(condition=condition)
    try:
        count = to_int(attempts)
    except ValueError:
        count = -1
    if count < 0:
        ctx.error(path, f"'on-failure:N' needs a number of retries, got '{text}'")
        return None
    ctx.warn(
        path,
        f"at most {count} restarts is not enforced: the agent keeps restarting with its backoff",
    )
    return Restart(condition=condition, max_attempts=count)
