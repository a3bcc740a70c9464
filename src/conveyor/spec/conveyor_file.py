"""`conveyor.yaml` -> model.ConveyorConfig.

Read with the loader compose files use (YAML 1.2, a line for every key), then checked key by
key: every problem is reported together, one `conveyor.yaml:LINE: field: message` per line,
sorted by line. Unknown keys are refused with the closest known one as a suggestion: a typo
in a delivery policy (`protect: true`) must not silently leave production unprotected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from conveyor.errors import SpecError
from conveyor.model.environments import (
    DEFAULT_COMPOSE,
    DEFAULT_POLL_INTERVAL,
    ConveyorConfig,
    EnvironmentSpec,
    GpgVerify,
    OnInterrupted,
    PromotionGates,
    ServiceOverride,
    SshVerify,
)
from conveyor.spec.alert_thresholds import alert_thresholds
from conveyor.spec.aws import aws_settings
from conveyor.spec.backups import backups_settings
from conveyor.spec.checks import checks as parse_checks
from conveyor.spec.context import Context, raise_errors
from conveyor.spec.deploy_repo import check_deploy_repos, deploy_repo, target
from conveyor.spec.durations import parse_duration, parse_non_negative_duration
from conveyor.spec.fleet import fleet as parse_fleet
from conveyor.spec.flux import flux_settings
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.kube_settings import kube_settings
from conveyor.spec.log_shipping import log_shipping as parse_log_shipping
from conveyor.spec.notifications import notifications as parse_notifications
from conveyor.spec.slo import environment_slos
from conveyor.spec.values import describe, one_of, suggest, to_bool, to_int, to_str
from conveyor.spec.yamlpos import Document, YamlPath, load_yaml

FILE_NAME = "conveyor.yaml"
MIN_POLL_INTERVAL = 1.0  # seconds: faster polling only loads the git server; use webhooks

TOP_KEYS = (
    "environments", "notifications", "logs", "checks", "aws", "flux", "kubernetes", "hosts",
    "inventory", "hosts_from", "backups",
)  # fmt: skip
ENVIRONMENT_KEYS = (
    "branch",
    "tag_pattern",
    "compose",
    "poll_interval",
    "protected",
    "promote_from",
    "gates",
    "auto_promote",
    "overrides",
    "verify",
    "on_interrupted",
    "slo",
    "alerts",
    "target",
    "deploy",
)
GATE_KEYS = ("soak", "pipeline_passed", "approval")
OVERRIDE_KEYS = ("replicas", "environment", "ports")
VERIFY_KEYS = ("ssh", "gpg")
SSH_KEYS = ("allowed_signers",)
GPG_KEYS = ("keyring", "fingerprints")
ON_INTERRUPTED = ("rerun", "abandon")

# The environment's name is part of its project name (`<base>-<name>`) and of file names.
_ENV_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9._-]+")  # the Compose schema's pattern
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")  # OpenPGP v4 / v5
# What git-check-ref-format refuses anywhere in a name.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")

T = TypeVar("T")


def load_conveyor_file(path: Path, name: str | None = None) -> ConveyorConfig:
    """Load and check a `conveyor.yaml`. Messages name the file `name` (default: `path` as
    given). Raises SpecError (one problem) or SpecErrors (several, sorted by line)."""
    file = str(path) if name is None else name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            file, None, "", "no such file: the repository needs one at its root"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(file, None, "", f"cannot read the file: {e}") from None
    return parse_conveyor(text, file, base=path.parent)


def parse_conveyor(text: str, file: str = FILE_NAME, base: Path | None = None) -> ConveyorConfig:
    """`conveyor.yaml` from its text (read from git at a commit, say); `file` names it in
    messages. Raises SpecError or SpecErrors."""
    doc = load_yaml(text, file, version="1.2")
    if doc.data is None:
        raise SpecError(file, None, "", "the file is empty: it needs 'environments'")
    ctx = Context(doc=doc, file=file, base=base or Path("."), environ={})
    config = _config(ctx)
    raise_errors(ctx.errors)
    assert config is not None  # no errors means every part was built
    return config


# --- the document --------------------------------------------------------------------------


def _config(ctx: Context) -> ConveyorConfig | None:
    root = mapping(ctx, (), ctx.doc.data)
    if root is None:
        return None
    known_keys(ctx, (), root, TOP_KEYS, listed=False, extensions=True)
    notifications = parse_notifications(ctx, ("notifications",), root.get("notifications"))
    logs = parse_log_shipping(ctx, ("logs",), root.get("logs"))
    checks = parse_checks(ctx, ("checks",), root.get("checks"))
    aws = aws_settings(ctx, ("aws",), root.get("aws"))
    backups = backups_settings(ctx, ("backups",), root.get("backups"))
    flux = flux_settings(ctx, ("flux",), root.get("flux"))
    kubernetes = kube_settings(ctx, ("kubernetes",), root.get("kubernetes"))
    fleet = parse_fleet(ctx, root)
    if "environments" not in root:
        ctx.error((), "'environments' is required: name at least one environment")
        return None
    raw_envs = mapping(ctx, ("environments",), root["environments"])
    if raw_envs is None:
        return None
    if not raw_envs:
        ctx.error(("environments",), "name at least one environment")
        return None
    envs = {name: _environment(ctx, name, raw, flux.branch) for name, raw in raw_envs.items()}
    _check_promotions(ctx, envs)
    check_deploy_repos(
        ctx, {n: e.deploy for n, e in envs.items() if e is not None and e.deploy is not None}
    )
    if ctx.errors or any(e is None for e in envs.values()):
        return None
    return ConveyorConfig(
        environments={name: env for name, env in envs.items() if env is not None},
        notifications=notifications,
        logs=logs,
        checks=checks,
        aws=aws,
        backups=backups,
        flux=flux,
        kubernetes=kubernetes,
        fleet=fleet,
    )


def _environment(
    ctx: Context, name: str, written: Any, deploy_branch: str
) -> EnvironmentSpec | None:
    """`deploy_branch`: the deploy repository's branch when `deploy:` names none (Flux's)."""
    path: YamlPath = ("environments", name)
    errors_before = len(ctx.errors)
    if not _ENV_NAME.fullmatch(name):
        ctx.error(
            path,
            f"invalid environment name '{name}': use lower-case letters, digits, '-' and '_' "
            "(it names the environment's project, <project>-<environment>)",
        )
    raw = mapping(ctx, path, {} if written is None else written)
    if raw is None:
        return None
    known_keys(ctx, path, raw, ENVIRONMENT_KEYS, listed=False)
    branch = _optional(ctx, raw, path, "branch", _branch)
    promote_from = _optional(ctx, raw, path, "promote_from", _name)
    if "branch" not in raw and "promote_from" not in raw:
        ctx.error(
            path,
            "needs 'branch' (every commit on it is deployed) or 'promote_from' "
            "(the environment its releases are promoted from)",
        )
    if "branch" in raw and "promote_from" in raw:
        ctx.error((*path, "promote_from"), "set 'branch' or 'promote_from', not both")
    tag_pattern = _optional(ctx, raw, path, "tag_pattern", _pattern)
    if "tag_pattern" in raw and "branch" not in raw:
        ctx.error((*path, "tag_pattern"), "applies only to an environment with a 'branch'")
    for key in ("gates", "auto_promote"):
        if key in raw and "promote_from" not in raw:
            ctx.error((*path, key), "applies only to an environment with 'promote_from'")
    on_interrupted = _optional(ctx, raw, path, "on_interrupted", _on_interrupted)
    if "on_interrupted" in raw and "branch" not in raw:
        ctx.error(
            (*path, "on_interrupted"),
            "applies only to an environment with a 'branch' (pipelines run where a branch "
            "feeds; a promotion runs none)",
        )
    kind = target(ctx, path, raw)
    spec = EnvironmentSpec(
        name=name,
        target=kind,
        deploy=deploy_repo(ctx, path, raw, kind, _branch, deploy_branch),
        branch=branch,
        tag_pattern=tag_pattern,
        compose=_optional(ctx, raw, path, "compose", _repo_path) or DEFAULT_COMPOSE,
        poll_interval=_optional(ctx, raw, path, "poll_interval", _interval)
        or DEFAULT_POLL_INTERVAL,
        protected=bool(_optional(ctx, raw, path, "protected", to_bool)),
        promote_from=promote_from,
        gates=_gates(ctx, raw.get("gates"), (*path, "gates")),
        auto_promote=bool(_optional(ctx, raw, path, "auto_promote", to_bool)),
        overrides=_overrides(ctx, raw.get("overrides"), (*path, "overrides")),
        verify=_verify(ctx, raw.get("verify"), (*path, "verify")),
        on_interrupted=on_interrupted or "rerun",
        slo=environment_slos(ctx, (*path, "slo"), raw.get("slo")),
        alerts=alert_thresholds(ctx, (*path, "alerts"), raw.get("alerts")),
        file=ctx.file,
        lines=_lines_under(ctx.doc, path),
    )
    return spec if len(ctx.errors) == errors_before else None


def _gates(ctx: Context, written: Any, path: YamlPath) -> PromotionGates:
    raw = mapping(ctx, path, written) if written is not None else {}
    if not raw:
        return PromotionGates()
    known_keys(ctx, path, raw, GATE_KEYS, listed=False)
    soak = _optional(ctx, raw, path, "soak", parse_non_negative_duration)
    passed = _optional(ctx, raw, path, "pipeline_passed", to_bool)
    approval = _optional(ctx, raw, path, "approval", to_bool)
    return PromotionGates(
        soak=soak or 0.0,
        pipeline_passed=True if passed is None else passed,
        approval=bool(approval),
    )


def _overrides(ctx: Context, written: Any, path: YamlPath) -> dict[str, ServiceOverride]:
    raw = mapping(ctx, path, written) if written is not None else {}
    out: dict[str, ServiceOverride] = {}
    for service, value in (raw or {}).items():
        where = (*path, service)
        if not _SERVICE_NAME.fullmatch(service):
            ctx.error(where, f"invalid service name '{service}' (must match ^[a-zA-Z0-9._-]+$)")
            continue
        settings = mapping(ctx, where, value) if value is not None else {}
        if settings is None:
            continue
        known_keys(ctx, where, settings, OVERRIDE_KEYS, listed=False)
        out[service] = ServiceOverride(
            replicas=_optional(ctx, settings, where, "replicas", _replicas),
            environment=_variables(ctx, settings.get("environment"), (*where, "environment")),
            ports=_ports(ctx, settings.get("ports"), (*where, "ports")),
        )
    return out


def _variables(ctx: Context, written: Any, path: YamlPath) -> dict[str, str]:
    if written is None:
        return {}
    raw = mapping(ctx, path, written, "a mapping of NAME: value")
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if value is None:
            ctx.error((*path, key), "needs a value (write '' for an empty one)")
        elif isinstance(value, list | dict):
            ctx.error((*path, key), f"must be a string, number or boolean, got {describe(value)}")
        else:
            out[key] = to_str(value)
    return out


def _ports(ctx: Context, written: Any, path: YamlPath) -> dict[int, int]:
    if written is None:
        return {}
    raw = mapping(ctx, path, written, "a mapping of published port: port in this environment")
    out: dict[int, int] = {}
    taken: dict[int, str] = {}
    for key, value in (raw or {}).items():
        where = (*path, key)
        source = ctx.convert(where, _port, key, None)
        target = ctx.convert(where, _port, value, None)
        if source is None or target is None:
            continue
        if source in out:
            ctx.error(where, f"port {source} is remapped twice")
            continue
        if target in taken:
            ctx.error(where, f"port {target} is already the new port of {taken[target]}")
            continue
        taken[target] = key
        out[source] = target
    return out


def _verify(ctx: Context, written: Any, path: YamlPath) -> SshVerify | GpgVerify | None:
    if written is None:
        return None
    raw = mapping(ctx, path, written)
    if raw is None:
        return None
    known_keys(ctx, path, raw, VERIFY_KEYS, listed=False)
    given = [key for key in VERIFY_KEYS if key in raw]
    if not given:
        ctx.error(path, "needs 'ssh' (an allowed-signers file) or 'gpg' (a GnuPG keyring)")
        return None
    if len(given) > 1:
        ctx.error(path, "set 'ssh' or 'gpg', not both")
        return None
    kind = given[0]
    where = (*path, kind)
    settings = mapping(ctx, where, raw[kind] if raw[kind] is not None else {})
    if settings is None:
        return None
    if kind == "ssh":
        known_keys(ctx, where, settings, SSH_KEYS, listed=False)
        signers = _required(ctx, settings, where, "allowed_signers", _host_path)
        return SshVerify(allowed_signers=signers) if signers else None
    known_keys(ctx, where, settings, GPG_KEYS, listed=False)
    keyring = _required(ctx, settings, where, "keyring", _host_path)
    fingerprints = _fingerprints(ctx, settings.get("fingerprints"), (*where, "fingerprints"))
    return GpgVerify(keyring=keyring, fingerprints=fingerprints) if keyring else None


def _fingerprints(ctx: Context, written: Any, path: YamlPath) -> tuple[str, ...]:
    if written is None:
        return ()
    if not isinstance(written, list):
        ctx.error(path, f"must be a list of key fingerprints, got {describe(written)}")
        return ()
    out: list[str] = []
    for index, item in enumerate(written):
        if not isinstance(item, str):
            # YAML reads an unquoted 0x... or all-digit fingerprint as a number.
            ctx.error((*path, index), "must be a fingerprint in quotes, got a number")
            continue
        text = re.sub(r"\s", "", item).upper().removeprefix("0X")
        if not _FINGERPRINT.fullmatch(text):
            ctx.error(
                (*path, index),
                f"must be a full key fingerprint (40 hex digits), got {describe(item)}",
            )
            continue
        out.append(text)
    return tuple(out)


def _check_promotions(ctx: Context, envs: Mapping[str, EnvironmentSpec | None]) -> None:
    """`promote_from` names another environment, and following it never comes back."""
    sources: dict[str, str] = {}
    raw = ctx.doc.data["environments"]
    for name, env in envs.items():
        written = raw[name].get("promote_from") if isinstance(raw[name], dict) else None
        source = env.promote_from if env is not None else written
        if not isinstance(source, str):
            continue
        where = ("environments", name, "promote_from")
        if source == name:
            ctx.error(where, "an environment cannot be promoted from itself")
        elif source not in envs:
            ctx.error(where, f"unknown environment '{source}'{suggest(source, envs)}")
        else:
            sources[name] = source
    reported: set[str] = set()
    for start in sorted(sources):
        chain = [start]
        while chain[-1] in sources and sources[chain[-1]] not in chain:
            chain.append(sources[chain[-1]])
        if chain[-1] not in sources:
            continue  # reached a branch-following environment
        loop = chain[chain.index(sources[chain[-1]]) :]
        if reported.intersection(loop):
            continue
        reported.update(loop)
        first = min(loop)
        turn = loop[loop.index(first) :] + loop[: loop.index(first)]
        cycle = " -> ".join([*turn, first])
        ctx.error(("environments", first, "promote_from"), f"promotion cycle: {cycle}")


# --- values --------------------------------------------------------------------------------


def _branch(value: Any) -> str:
    name = _name(value)
    if name.startswith("refs/"):
        raise ValueError(f"write the branch name without 'refs/...', got {describe(value)}")
    problem = ref_name_problem(name)
    if problem:
        raise ValueError(f"invalid branch name {describe(value)}: {problem}")
    return name


def ref_name_problem(name: str) -> str | None:
    """Why git would refuse `name` as a branch name (git-check-ref-format), or None."""
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-'"
    if name == "@":
        return "'@' alone is not a ref name"
    bad = _REF_FORBIDDEN.search(name)
    if bad is not None:
        found = bad.group()
        if found.isprintable() and not found.isspace():
            return f"'{found}' is not allowed"
        return "spaces and control characters are not allowed"
    if name.endswith(("/", ".")):
        return "it ends with '/' or '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return "a part starts with '.'"
        if part.endswith(".lock"):
            return "a part ends with '.lock'"
    return None


def _name(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        # YAML reads `007` as the number 7: the name as written is lost, so ask for quotes.
        raise ValueError(f"must be a name, got the number {value} (quote names made of digits)")
    raise ValueError(f"must be a name, got {describe(value)}")


def _pattern(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"must be a tag pattern such as 'v*', got {describe(value)}")


def _on_interrupted(value: Any) -> OnInterrupted:
    return "abandon" if one_of(value, ON_INTERRUPTED) == "abandon" else "rerun"


def _repo_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a path in the repository, got {describe(value)}")
    text = value.strip()
    normal = os.path.normpath(text)
    if PurePosixPath(text).is_absolute() or normal == ".." or normal.startswith("../"):
        raise ValueError(f"must be a path inside the repository, got {describe(value)}")
    return normal


def _host_path(value: Any) -> str:
    """A file on the server's host. Relative paths are refused: the key that checks commits
    must not be read from a file those commits can change."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be an absolute path on the server, got {describe(value)}")
    if not os.path.isabs(value.strip()):
        raise ValueError(
            f"must be an absolute path on the server (not a file of the repository it "
            f"checks), got {describe(value)}"
        )
    return os.path.normpath(value.strip())


def _interval(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < MIN_POLL_INTERVAL:
        raise ValueError(
            f"must be at least {MIN_POLL_INTERVAL:g}s (webhooks make changes visible at "
            f"once), got {describe(value)}"
        )
    return seconds


def _replicas(value: Any) -> int:
    number = to_int(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    return number


def _port(value: Any) -> int:
    try:
        number = to_int(value)
    except ValueError:
        raise ValueError(f"must be a port number, got {describe(value)}") from None
    if not 1 <= number <= 65535:
        raise ValueError(f"must be a port number (1-65535), got {number}")
    return number


# --- shapes --------------------------------------------------------------------------------


def _optional(
    ctx: Context, raw: Mapping[str, Any], path: YamlPath, key: str, convert: Callable[[Any], T]
) -> T | None:
    if key not in raw:
        return None
    return ctx.convert((*path, key), convert, raw[key], None)


def _required(
    ctx: Context, raw: Mapping[str, Any], path: YamlPath, key: str, convert: Callable[[Any], T]
) -> T | None:
    if key not in raw:
        ctx.error(path, f"'{key}' is required")
        return None
    return _optional(ctx, raw, path, key, convert)


def _lines_under(doc: Document, prefix: YamlPath) -> dict[str, int]:
    depth = len(prefix)
    return {
        ".".join(str(part) for part in path[depth:]): line
        for path, line in doc.lines.items()
        if path[:depth] == prefix
    }
