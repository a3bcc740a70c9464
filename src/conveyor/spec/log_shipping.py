"""The `logs:` section (conveyor.yaml, or the file `CONVEYOR_LOGS_CONFIG` names) ->
model.log_shipping.LogShipping.

    logs:
      ship:
        - elasticsearch:
            url: https://es.example.com:9200
            index: "conveyor-%Y.%m.%d"      # strftime of each record's time, UTC
            username: conveyor               # with password_env; or api_key_env alone
            password_env: ES_PASSWORD
        - loki:
            url: https://loki.example.com
            labels: [project, environment, service, stream]
            tenant: team-a

Every destination also takes `name` (its buffer and events; default the kind, then
`<kind>-2`…), `timeout` (a duration) and `buffer` (a byte size: the on-disk cap). Problems are
recorded in the Context at their file:line, so they are reported with the rest of the file's.
Secrets are refused in the file: only the names of environment variables that hold them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conveyor.errors import SpecError
from conveyor.model.log_shipping import (
    DEFAULT_BUFFER,
    DEFAULT_INDEX,
    DEFAULT_LOKI_LABELS,
    DEFAULT_TIMEOUT,
    LOKI_LABELS,
    Destination,
    ElasticsearchDestination,
    LogShipping,
    LokiDestination,
    LokiLabel,
)
from conveyor.spec.context import Context, raise_errors
from conveyor.spec.durations import parse_bytes, parse_duration
from conveyor.spec.keys import env_name, known_keys
from conveyor.spec.values import describe, suggest
from conveyor.spec.yamlpos import YamlPath, load_yaml

KINDS = ("elasticsearch", "loki")
_ES_KEYS = (
    "name",
    "url",
    "index",
    "username",
    "password_env",
    "api_key_env",
    "timeout",
    "buffer",
)
_LOKI_KEYS = ("name", "url", "labels", "tenant", "username", "password_env", "timeout", "buffer")
# Keys people write when they mean the *_env ones: the value would be a secret in git.
_SECRETS = {"password": "password_env", "api_key": "api_key_env", "apikey": "api_key_env"}
# Labels people reach for that would make a Loki stream per container or per deploy.
_TOO_MANY_VALUES = ("replica", "container", "release", "job")

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# The strftime directives an index pattern may use: dates and hours, nothing locale-dependent.
_DIRECTIVE = re.compile(r"%(.)")
_DATE_DIRECTIVES = set("YymdjHGVu%")
# What Elasticsearch refuses in an index name (docs: "Index name limitations").
_INDEX_FORBIDDEN = re.compile(r'[\\/*?"<>| ,#:]')
MIN_BUFFER = 1024 * 1024


def log_shipping(ctx: Context, path: YamlPath, raw: Any) -> LogShipping:
    """`raw` (the value at `path`, e.g. `("logs",)`) as LogShipping; absent means no shipping."""
    if raw is None:
        return LogShipping()
    if not isinstance(raw, dict):
        ctx.error(path, f"must be a mapping (with 'ship'), got {describe(raw)}")
        return LogShipping()
    known_keys(ctx, path, raw, ("ship",), secrets=_SECRETS)
    ship = raw.get("ship")
    if ship is None:
        return LogShipping()
    where = (*path, "ship")
    if not isinstance(ship, list):
        ctx.error(where, f"must be a list of destinations, got {describe(ship)}")
        return LogShipping()
    out: list[Destination] = []
    used: dict[str, int] = {}
    for index, item in enumerate(ship):
        dest = _destination(ctx, (*where, index), item, used)
        if dest is not None:
            out.append(dest)
    return LogShipping(ship=tuple(out))


def load_logs_file(path: Path, name: str | None = None) -> LogShipping:
    """A file holding only a `logs:` section (what `CONVEYOR_LOGS_CONFIG` names for `conveyor
    up`). Raises SpecError (one problem) or SpecErrors (several, sorted by line)."""
    file = str(path) if name is None else name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(file, None, "", f"cannot read the file: {e}") from None
    doc = load_yaml(text, file, version="1.2")
    if not isinstance(doc.data, dict) or "logs" not in doc.data:
        raise SpecError(file, None, "", "needs a top-level 'logs:' section (logs: {ship: [...]})")
    ctx = Context(doc=doc, file=file, base=path.parent, environ={})
    for key in doc.data:
        if key != "logs" and not str(key).startswith("x-"):
            ctx.error((key,), f"unknown key '{key}': this file holds only 'logs:'")
    shipping = log_shipping(ctx, ("logs",), doc.data["logs"])
    raise_errors(ctx.errors)
    return shipping


# --- destinations ----------------------------------------------------------------------------


def _destination(
    ctx: Context, path: YamlPath, raw: Any, used: dict[str, int]
) -> Destination | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        ctx.error(
            path,
            f"must be one of {{elasticsearch: {{...}}}} or {{loki: {{...}}}}, got {describe(raw)}",
        )
        return None
    kind, settings = next(iter(raw.items()))
    if kind not in KINDS:
        known = ", ".join(KINDS)
        ctx.error(
            (*path, kind),
            f"unknown destination '{kind}' (known: {known}){suggest(str(kind), KINDS)}",
        )
        return None
    where = (*path, kind)
    if not isinstance(settings, dict):
        ctx.error(where, f"must be a mapping (with at least 'url'), got {describe(settings)}")
        return None
    errors_before = len(ctx.errors)
    name = _dest_name(ctx, where, settings, kind, used)
    url = _url(ctx, where, settings)
    username, password_env = _login(ctx, where, settings)
    timeout = _timeout(ctx, where, settings)
    buffer = ctx.optional(settings, "buffer", where, _buffer, DEFAULT_BUFFER)
    dest: Destination
    if kind == "elasticsearch":
        known_keys(ctx, where, settings, _ES_KEYS, secrets=_SECRETS)
        index = ctx.optional(settings, "index", where, index_pattern, DEFAULT_INDEX)
        api_key_env = env_name(ctx, where, settings, "api_key_env")
        if api_key_env is not None and "username" in settings:
            ctx.error((*where, "api_key_env"), "give 'api_key_env' or 'username', not both")
        dest = ElasticsearchDestination(
            name=name or kind,
            url=url or "http://invalid",
            index=index,
            username=username,
            password_env=password_env,
            api_key_env=api_key_env,
            timeout=timeout,
            buffer=buffer,
        )
    else:
        known_keys(ctx, where, settings, _LOKI_KEYS, secrets=_SECRETS)
        dest = LokiDestination(
            name=name or kind,
            url=url or "http://invalid",
            labels=_labels(ctx, where, settings),
            tenant=ctx.optional(settings, "tenant", where, _tenant, None),
            username=username,
            password_env=password_env,
            timeout=timeout,
            buffer=buffer,
        )
    return dest if len(ctx.errors) == errors_before else None


def _dest_name(
    ctx: Context, path: YamlPath, raw: Mapping[str, Any], kind: str, used: dict[str, int]
) -> str | None:
    written = raw.get("name")
    if written is None:
        # The first of a kind is named after it, the next ones `<kind>-2`…: a buffer each.
        count = sum(1 for n in used if n == kind or n.startswith(f"{kind}-"))
        name = kind if count == 0 else f"{kind}-{count + 1}"
    elif isinstance(written, str) and _NAME.fullmatch(written):
        name = written
    else:
        ctx.error(
            (*path, "name"),
            f"must be lower-case letters, digits, '-' and '_' (it names a directory), "
            f"got {describe(written)}",
        )
        return None
    if name in used:
        ctx.error(
            (*path, "name") if written is not None else path,
            f"two destinations are named '{name}': give one a different 'name' "
            "(each has its own buffer)",
        )
        return None
    used[name] = len(used)
    return name


def _url(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> str | None:
    value = raw.get("url")
    if value is None:
        ctx.error(path, "missing 'url'", (*path, "url"))
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        ctx.error((*path, "url"), f"must be an http:// or https:// URL, got {describe(value)}")
        return None
    url = str(value)
    if parts.username or parts.password:
        ctx.error(
            (*path, "url"),
            "credentials do not belong in the URL: use 'username' and 'password_env'",
        )
        return None
    return url.rstrip("/")


def _login(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    username = raw.get("username")
    if username is not None and (not isinstance(username, str) or not username.strip()):
        ctx.error((*path, "username"), f"must be a user name, got {describe(username)}")
        username = None
    password_env = env_name(ctx, path, raw, "password_env")
    if ("username" in raw) != ("password_env" in raw):
        missing = "password_env" if "username" in raw else "username"
        ctx.error(path, "a login needs both 'username' and 'password_env'", (*path, missing))
    return username, password_env


def _labels(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> tuple[LokiLabel, ...]:
    value = raw.get("labels")
    if value is None:
        return DEFAULT_LOKI_LABELS
    where = (*path, "labels")
    if not isinstance(value, list) or not value:
        ctx.error(
            where, f"must be a list of labels ({', '.join(LOKI_LABELS)}), got {describe(value)}"
        )
        return DEFAULT_LOKI_LABELS
    out: list[LokiLabel] = []
    for index, item in enumerate(value):
        label = next((name for name in LOKI_LABELS if name == item), None)
        if label is not None:
            if label in out:
                ctx.error((*where, index), f"'{label}' is listed twice")
            out.append(label)
        elif item in _TOO_MANY_VALUES:
            ctx.error(
                (*where, index),
                f"'{item}' has too many values to be a Loki label (a stream per "
                f"{'container' if item != 'release' else 'deploy'}); every line carries it "
                "in its JSON instead",
            )
        else:
            known = ", ".join(LOKI_LABELS)
            ctx.error(
                (*where, index),
                f"unknown label {describe(item)} (known: {known}){suggest(str(item), LOKI_LABELS)}",
            )
    return tuple(out)


def index_pattern(value: Any) -> str:
    """An index name with strftime date directives; ValueError when Elasticsearch would refuse
    the names it makes."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"must be an index name such as 'conveyor-%Y.%m.%d', got {describe(value)}"
        )
    pattern = value.strip()
    for found in _DIRECTIVE.finditer(pattern):
        if found.group(1) not in _DATE_DIRECTIVES:
            raise ValueError(
                f"'%{found.group(1)}' is not a date directive here (use %Y, %m, %d, %j, %H, "
                f"%G, %V, %u, %y or %%), in {describe(value)}"
            )
    if pattern.endswith("%"):
        raise ValueError(f"a lone '%' ends {describe(value)} (write %% for a percent sign)")
    sample = datetime(2026, 12, 31, 23, tzinfo=UTC).strftime(pattern)
    problem = index_name_problem(sample)
    if problem:
        raise ValueError(f"Elasticsearch would refuse the index {sample!r}: {problem}")
    return pattern


def index_name_problem(name: str) -> str | None:
    """Why Elasticsearch refuses `name` as an index name, or None."""
    if name != name.lower():
        return "index names are lower case"
    bad = _INDEX_FORBIDDEN.search(name)
    if bad:
        return f"{bad.group()!r} is not allowed"
    if name.startswith(("-", "_", "+")):
        return "it starts with '-', '_' or '+'"
    if name in (".", ".."):
        return "'.' and '..' are not index names"
    if len(name.encode()) > 255:
        return "it is longer than 255 bytes"
    return None


def _tenant(value: Any) -> str:
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        text = str(value).strip()
        if "|" in text:
            raise ValueError("one tenant per destination ('|' would name several)")
        return text
    raise ValueError(f"must be a tenant id, got {describe(value)}")


def _timeout(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> float:
    seconds = ctx.optional(raw, "timeout", path, parse_duration, DEFAULT_TIMEOUT)
    if seconds <= 0:
        ctx.error((*path, "timeout"), "must be longer than 0s")
        return DEFAULT_TIMEOUT
    return seconds


def _buffer(value: Any) -> int:
    size = parse_bytes(value)
    if size < MIN_BUFFER:
        raise ValueError(f"the buffer needs at least 1m, got {describe(value)}")
    return size
