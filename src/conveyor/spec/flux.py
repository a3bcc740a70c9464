"""The `flux:` section of conveyor.yaml -> model.FluxSettings (docs/flux.md; the keys are
listed in model/flux.py). An absent section gives the defaults; problems are recorded on the
Context with file, line and field, like every other section."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from conveyor.model.flux import FluxSettings, GitLabStatus, ImageAutomation, ImagePolicyKind
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.values import describe, one_of

T = TypeVar("T")

KEYS = (
    "branch",
    "path",
    "interval",
    "sops_secret",
    "conveyor_url",
    "webhook_secret",
    "gitlab",
    "images",
)
GITLAB_KEYS = ("url", "token_secret")
IMAGE_KEYS = ("policy", "range", "pattern", "extract", "order", "interval", "services")
POLICIES: tuple[ImagePolicyKind, ...] = ("semver", "alphabetical", "numerical")
# A Kubernetes object name (RFC 1123 subdomain, as Secrets are named).
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def flux_settings(ctx: Context, path: tuple[str, ...], raw: Any) -> FluxSettings:
    defaults = FluxSettings()
    if raw is None or mapping(ctx, path, raw) is None:
        return defaults
    known_keys(ctx, path, raw, KEYS, listed=False)

    def get(key: str, convert: Callable[[Any], T], default: T) -> T:
        if raw.get(key) is None:
            return default
        return ctx.convert((*path, key), convert, raw[key], default)

    return FluxSettings(
        branch=get("branch", _text, defaults.branch),
        path=get("path", _repo_path, defaults.path),
        interval=get("interval", _interval, defaults.interval),
        sops_secret=get("sops_secret", _secret_name, defaults.sops_secret),
        conveyor_url=get("conveyor_url", _url, None),
        webhook_secret=get("webhook_secret", _secret_name, defaults.webhook_secret),
        gitlab=_gitlab(ctx, (*path, "gitlab"), raw.get("gitlab")),
        images=_images(ctx, (*path, "images"), raw.get("images")),
        file=ctx.file,
        lines={
            ".".join(str(p) for p in at[len(path) :]): line
            for at, line in ctx.doc.lines.items()
            if at[: len(path)] == path
        },
    )


def _gitlab(ctx: Context, path: tuple[str, ...], written: Any) -> GitLabStatus | None:
    if written is None:
        return None
    raw = mapping(ctx, path, written)
    if raw is None:
        return None
    known_keys(ctx, path, raw, GITLAB_KEYS, listed=True)
    if raw.get("url") is None:
        ctx.error(path, "'url' is required: the deploy repository's GitLab project URL")
        return None
    url = ctx.convert((*path, "url"), _url, raw["url"], None)
    token = GitLabStatus.model_fields["token_secret"].default
    if raw.get("token_secret") is not None:
        token = ctx.convert((*path, "token_secret"), _secret_name, raw["token_secret"], token)
    return GitLabStatus(url=url, token_secret=token) if url else None


def _images(ctx: Context, path: tuple[str, ...], written: Any) -> ImageAutomation | None:
    if written is None:
        return None
    raw = mapping(ctx, path, written)
    if raw is None:
        return None
    known_keys(ctx, path, raw, IMAGE_KEYS, listed=True)
    d = ImageAutomation()

    def get(key: str, convert: Callable[[Any], T], default: T) -> T:
        if raw.get(key) is None:
            return default
        return ctx.convert((*path, key), convert, raw[key], default)

    policy = get("policy", _policy, d.policy)
    if "range" in raw and policy != "semver":
        ctx.error((*path, "range"), f"applies only to policy semver, not {policy}")
    pattern = get("pattern", _regex, None)
    extract = get("extract", _text, None)
    if extract is not None and pattern is None:
        ctx.error((*path, "extract"), "needs 'pattern' (extract names its groups)")
    return ImageAutomation(
        policy=policy,
        range=get("range", _text, d.range),
        pattern=pattern,
        extract=extract,
        order="desc" if get("order", _order, "asc") == "desc" else "asc",
        interval=get("interval", _interval, d.interval),
        services=_names(ctx, (*path, "services"), raw.get("services")),
    )


def _names(ctx: Context, path: tuple[str, ...], written: Any) -> tuple[str, ...]:
    if written is None:
        return ()
    if not isinstance(written, list) or not all(isinstance(n, str) and n for n in written):
        ctx.error(path, f"must be a list of service names, got {describe(written)}")
        return ()
    return tuple(written)


def _text(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"must be a non-empty string, got {describe(value)}")


def _policy(value: Any) -> ImagePolicyKind:
    chosen = one_of(value, POLICIES)
    return next(p for p in POLICIES if p == chosen)


def _order(value: Any) -> str:
    return one_of(value, ("asc", "desc"))


def _regex(value: Any) -> str:
    text = _text(value)
    try:
        re.compile(text)
    except re.error as e:
        raise ValueError(f"is not a regular expression: {e}") from None
    return text


def _url(value: Any) -> str:
    text = _text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {describe(value)}")
    return text.rstrip("/")


def _secret_name(value: Any) -> str:
    text = _text(value)
    if not _OBJECT_NAME.fullmatch(text):
        raise ValueError(
            f"must be a Kubernetes Secret's name (lower-case letters, digits, '-', '.'), "
            f"got {describe(value)}"
        )
    return text


def _repo_path(value: Any) -> str:
    text = _text(value)
    normal = os.path.normpath(text)
    if text.startswith("/") or normal == ".." or normal.startswith("../"):
        raise ValueError(f"must be a path inside the deploy repository, got {describe(value)}")
    return normal


def _interval(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"must be whole seconds, at least 1s, got {describe(value)}")
    return seconds
