"""The `notifications:` section of conveyor.yaml -> model.NotificationsSpec.

    notifications:
      webhook: {url_env: SLACK_WEBHOOK_URL, events: [rollout.*, pipeline.failed]}
      email: {host: smtp.example.com, port: 587, starttls: true, from: conveyor@example.com,
              to: [ops@example.com], username_env: SMTP_USER, password_env: SMTP_PASSWORD}
      gitlab: {url: https://gitlab.example.com, project: group/app, token_env: GITLAB_TOKEN}

Problems are recorded in the Context (file, line, field) like the compose builder does, so the
conveyor.yaml loader reports them all at once. Secrets are refused in the file where the file
could hold one (a password, a token): only the names of environment variables are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from conveyor.model.frozen import Frozen
from conveyor.model.notifications import (
    TOPICS,
    EmailSpec,
    GitLabSpec,
    NotificationsSpec,
    Topic,
    WebhookSpec,
)
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.keys import env_name, known_keys, mapping
from conveyor.spec.values import describe, one_of, suggest, to_bool, to_int
from conveyor.spec.yamlpos import YamlPath

T = TypeVar("T")

_CHANNELS = ("webhook", "email", "gitlab")
_WEBHOOK_KEYS = ("url", "url_env", "events", "timeout")
_EMAIL_KEYS = (
    "host",
    "port",
    "from",
    "to",
    "starttls",
    "username_env",
    "password_env",
    "events",
    "timeout",
)
_GITLAB_KEYS = ("url", "project", "token_env", "events", "timeout")
# Keys people write when they mean the *_env ones: the value would be a secret in git.
_SECRETS = {"password": "password_env", "token": "token_env", "username": "username_env"}


def notifications(ctx: Context, path: YamlPath, raw: Any) -> NotificationsSpec:
    """`raw` (the value at `path`, e.g. `("notifications",)`) as a NotificationsSpec; an
    absent section is an empty one."""
    if raw is None:
        return NotificationsSpec()
    if mapping(ctx, path, raw) is None:
        return NotificationsSpec()
    known_keys(ctx, path, raw, _CHANNELS, secrets=_SECRETS)
    return NotificationsSpec(
        webhook=_section(ctx, path, raw, "webhook", _webhook),
        email=_section(ctx, path, raw, "email", _email),
        gitlab=_section(ctx, path, raw, "gitlab", _gitlab),
    )


def _section(
    ctx: Context,
    path: YamlPath,
    raw: Mapping[str, Any],
    key: str,
    build: Callable[[Context, YamlPath, Mapping[str, Any]], T | None],
) -> T | None:
    value = raw.get(key)
    where = (*path, key)
    if value is None or mapping(ctx, where, value) is None:
        return None
    return build(ctx, where, value)


def _webhook(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> WebhookSpec | None:
    known_keys(ctx, path, raw, _WEBHOOK_KEYS, secrets=_SECRETS)
    if "url" in raw and "url_env" in raw:
        ctx.error((*path, "url_env"), "give 'url' or 'url_env', not both")
        return None
    if "url" not in raw and "url_env" not in raw:
        ctx.error(path, "needs 'url' or 'url_env' (the variable holding the URL)")
        return None
    url = _url(ctx, path, raw, "url", required=False)
    url_env = env_name(ctx, path, raw, "url_env")
    if url is None and url_env is None:
        return None
    return WebhookSpec(
        url=url,
        url_env=url_env,
        events=_events(ctx, path, raw, _default(WebhookSpec, "events")),
        timeout=_timeout(ctx, path, raw, _default(WebhookSpec, "timeout")),
    )


def _email(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> EmailSpec | None:
    known_keys(ctx, path, raw, _EMAIL_KEYS, secrets=_SECRETS)
    host = _required_str(ctx, path, raw, "host")
    sender = _required_str(ctx, path, raw, "from")
    if sender is not None and not _is_address(sender):
        ctx.error((*path, "from"), f"not an email address: {sender!r}")
        sender = None
    to = _recipients(ctx, path, raw)
    starttls = ctx.optional(raw, "starttls", path, to_bool, False)
    # Submission with STARTTLS listens on 587 (RFC 6409); plain SMTP on 25.
    port = ctx.optional(raw, "port", path, _port, 587 if starttls else 25)
    username_env = env_name(ctx, path, raw, "username_env")
    password_env = env_name(ctx, path, raw, "password_env")
    if ("username_env" in raw) != ("password_env" in raw):
        missing = "username_env" if "password_env" in raw else "password_env"
        ctx.error(path, "a login needs both username_env and password_env", (*path, missing))
    events = _events(ctx, path, raw, _default(EmailSpec, "events"))
    timeout = _timeout(ctx, path, raw, _default(EmailSpec, "timeout"))
    if host is None or sender is None or not to:
        return None
    return EmailSpec(
        host=host,
        port=port,
        sender=sender,
        to=to,
        starttls=starttls,
        username_env=username_env,
        password_env=password_env,
        events=events,
        timeout=timeout,
    )


def _gitlab(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> GitLabSpec | None:
    known_keys(ctx, path, raw, _GITLAB_KEYS, secrets=_SECRETS)
    url = _url(ctx, path, raw, "url", required=True)
    project = _project(ctx, path, raw)
    token_env = env_name(ctx, path, raw, "token_env")
    if "token_env" not in raw:
        why = "missing 'token_env' (the variable holding the access token)"
        ctx.error(path, why, (*path, "token_env"))
    events = _events(ctx, path, raw, _default(GitLabSpec, "events"))
    timeout = _timeout(ctx, path, raw, _default(GitLabSpec, "timeout"))
    if url is None or project is None or token_env is None:
        return None
    return GitLabSpec(url=url, project=project, token_env=token_env, events=events, timeout=timeout)


def _project(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> str | None:
    value = raw.get("project")
    if value is None:
        why = "missing 'project' (its numeric id or its path, e.g. group/app)"
        ctx.error(path, why, (*path, "project"))
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        ctx.error((*path, "project"), f"must be a project id or path, got {describe(value)}")
        return None
    return str(value).strip()


def _default(model: type[Frozen], name: str) -> Any:
    """A field's default, read from the model rather than repeated here."""
    return model.model_fields[name].default


# --- values ----------------------------------------------------------------------------------


def _required_str(ctx: Context, path: YamlPath, raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        ctx.error(path, f"missing '{key}'", (*path, key))
        return None
    if not isinstance(value, str) or not value.strip():
        ctx.error((*path, key), f"must be a non-empty string, got {describe(value)}")
        return None
    return value.strip()


def _url(
    ctx: Context, path: YamlPath, raw: Mapping[str, Any], key: str, required: bool
) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            ctx.error(path, f"missing '{key}'", (*path, key))
        return None
    parts = urlsplit(str(value)) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        ctx.error((*path, key), f"must be an http:// or https:// URL, got {describe(value)}")
        return None
    return str(value)


def _recipients(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> tuple[str, ...]:
    value = raw.get("to")
    if value is None:
        ctx.error(path, "missing 'to' (one address or a list)", (*path, "to"))
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        ctx.error((*path, "to"), f"must be an address or a list of them, got {describe(value)}")
        return ()
    out: list[str] = []
    for index, item in enumerate(items):
        where = (*path, "to") if isinstance(value, str) else (*path, "to", index)
        if isinstance(item, str) and _is_address(item.strip()):
            out.append(item.strip())
        else:
            ctx.error(where, f"not an email address: {describe(item)}")
    return tuple(out)


def _is_address(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in text)


def _port(value: object) -> int:
    port = to_int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"must be a port between 1 and 65535, got {port}")
    return port


def _timeout(ctx: Context, path: YamlPath, raw: Mapping[str, Any], default: float) -> float:
    seconds = ctx.optional(raw, "timeout", path, parse_duration, default)
    if seconds <= 0:
        ctx.error((*path, "timeout"), "must be longer than 0s")
        return default
    return seconds


def _events(
    ctx: Context, path: YamlPath, raw: Mapping[str, Any], default: frozenset[Topic]
) -> frozenset[Topic]:
    """`events:` as topics; `rollout.*` stands for every topic of that kind, `*` for all."""
    value = raw.get("events")
    if value is None:
        return default
    where = (*path, "events")
    if not isinstance(value, list):
        ctx.error(where, f"must be a list of events, got {describe(value)}")
        return default
    chosen: set[Topic] = set()
    for index, item in enumerate(value):
        try:
            chosen |= topics(item)
        except ValueError as exc:
            ctx.error((*where, index), str(exc))
    return frozenset(chosen)


def topics(pattern: object) -> set[Topic]:
    """The topics `pattern` names: a topic, `kind.*`, or `*`. ValueError otherwise."""
    if pattern == "*":
        return set(TOPICS)
    if isinstance(pattern, str) and pattern.endswith(".*"):
        prefix = pattern[:-1]
        found = {t for t in TOPICS if t.startswith(prefix)}
        if found:
            return found
        kinds = sorted({t.split(".")[0] + ".*" for t in TOPICS})
        raise ValueError(f"no events match {pattern!r}{suggest(pattern, kinds)}")
    name = one_of(pattern, TOPICS)
    return {t for t in TOPICS if t == name}
