"""One Compose service (already schema-valid and interpolated) -> model.Service.

Every conversion problem is recorded in the Context and replaced by the model default, so
one run reports all of a file's problems instead of stopping at the first.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any, Literal

from conveyor.model.stack import (
    BuildSpec,
    DependsOn,
    FailureAction,
    Healthcheck,
    PullPolicy,
    Resources,
    Service,
    UpdateConfig,
    UpdateOrder,
    VolumeMount,
)
from conveyor.spec.alert_thresholds import alert_thresholds
from conveyor.spec.autoscale import autoscale
from conveyor.spec.backups import service_backup
from conveyor.spec.canary import canary
from conveyor.spec.container import container_settings
from conveyor.spec.context import Context
from conveyor.spec.dotenv import parse_env
from conveyor.spec.durations import parse_bytes, parse_duration
from conveyor.spec.mounts import config_mounts, secret_mounts, volume_mounts
from conveyor.spec.networks import networking, service_networks
from conveyor.spec.placement import service_placement
from conveyor.spec.restart import restart_policy
from conveyor.spec.routing import metrics_endpoint, routing
from conveyor.spec.slo import service_slo
from conveyor.spec.values import one_of, signal_name, suggest, to_bool, to_float, to_int, to_str
from conveyor.spec.yamlpos import YamlPath

# Defaults live in the model; these instances let the builder read them instead of
# repeating numbers here.
_SERVICE = Service(name="_")
_HEALTH = Healthcheck(test=())
_UPDATE = _SERVICE.update_config
_ROLLBACK = _SERVICE.rollback_config

Condition = Literal["service_started", "service_healthy", "service_completed_successfully"]
# Tables rather than tuples so a lookup also gives mypy the Literal type.
_FAILURE_ACTIONS: dict[str, FailureAction] = {a: a for a in ("continue", "pause", "rollback")}
_CONDITIONS: dict[str, Condition] = {
    c: c for c in ("service_started", "service_healthy", "service_completed_successfully")
}
_ORDERS: dict[object, UpdateOrder] = {o: o for o in ("start-first", "stop-first")}
_HEALTH_TEST_KINDS = ("CMD", "CMD-SHELL", "NONE")


def build_service(ctx: Context, name: str, raw: dict[str, Any]) -> Service:
    path: YamlPath = ("services", name)
    # Settings that would change what runs but that Conveyor does not implement: saying so
    # beats silently deploying something other than what the file describes.
    mode = networking(ctx, path, raw)
    route, ports, expose = routing(ctx, path, raw, mode)
    deploy = raw.get("deploy") or {}
    deploy_path = (*path, "deploy")
    resources = deploy.get("resources") or {}
    limits = resources.get("limits") or {}
    replicas = _replicas(ctx, path, raw, deploy)
    _container_name(ctx, path, raw, replicas)
    volumes = volume_mounts(ctx, (*path, "volumes"), raw.get("volumes"))
    _warn_shared_volume(ctx, path, deploy, volumes)
    return Service(
        name=name,
        image=raw.get("image"),
        build=_build(ctx, (*path, "build"), raw.get("build")),
        pull_policy=_pull_policy(ctx, (*path, "pull_policy"), raw.get("pull_policy")),
        command=_argv(ctx, (*path, "command"), raw.get("command")),
        entrypoint=_argv(ctx, (*path, "entrypoint"), raw.get("entrypoint")),
        environment=_environment(ctx, path, raw),
        healthcheck=_healthcheck(ctx, (*path, "healthcheck"), raw.get("healthcheck")),
        depends_on=_depends_on(ctx, (*path, "depends_on"), raw.get("depends_on")),
        replicas=replicas,
        update_config=_update(
            ctx, (*deploy_path, "update_config"), deploy.get("update_config"), _UPDATE
        ),
        rollback_config=_update(
            ctx, (*deploy_path, "rollback_config"), deploy.get("rollback_config"), _ROLLBACK
        ),
        limits=_service_limits(
            ctx, path, raw, _limits(ctx, (*deploy_path, "resources", "limits"), limits)
        ),
        stop_grace_period=ctx.optional(
            raw, "stop_grace_period", path, parse_duration, _SERVICE.stop_grace_period
        ),
        stop_signal=ctx.optional(raw, "stop_signal", path, signal_name, _SERVICE.stop_signal),
        volumes=volumes,
        secrets=secret_mounts(ctx, (*path, "secrets"), raw.get("secrets")),
        labels=pairs(ctx, (*path, "labels"), raw.get("labels"), fill=lambda _key: ""),
        user=raw.get("user"),
        working_dir=raw.get("working_dir"),
        routing=route,
        networking=mode,
        networks=service_networks(ctx, path, raw, mode),
        ports=ports,
        expose=expose,
        configs=config_mounts(ctx, (*path, "configs"), raw.get("configs")),
        restart=restart_policy(ctx, path, raw),
        reservations=_reservations(ctx, (*deploy_path, "resources"), resources),
        container=container_settings(ctx, path, raw),
        slo=service_slo(
            ctx, (*path, "x-conveyor", "slo"), (raw.get("x-conveyor") or {}).get("slo")
        ),
        metrics=metrics_endpoint(ctx, path, raw),
        placement=service_placement(ctx, path, raw),
        canary=canary(
            ctx,
            (*path, "x-conveyor", "canary"),
            (raw.get("x-conveyor") or {}).get("canary"),
            route,
            has_metrics=(raw.get("x-conveyor") or {}).get("metrics") is not None,
        ),
        alerts=alert_thresholds(
            ctx, (*path, "x-conveyor", "alerts"), (raw.get("x-conveyor") or {}).get("alerts")
        ),
        backup=service_backup(
            ctx, (*path, "x-conveyor", "backup"), (raw.get("x-conveyor") or {}).get("backup")
        ),
        autoscale=autoscale(
            ctx, (*path, "x-conveyor", "autoscale"), (raw.get("x-conveyor") or {}).get("autoscale")
        ),
    )


_PULL_POLICIES: dict[str, PullPolicy] = {
    "build": "build",
    "always": "always",
    "missing": "missing",
    "if_not_present": "missing",
    "never": "never",
}


def _pull_policy(ctx: Context, path: YamlPath, raw: Any) -> PullPolicy | None:
    if raw is None:
        return None
    policy = _PULL_POLICIES.get(str(raw))
    if policy is None:
        choices = ", ".join(sorted(_PULL_POLICIES))
        ctx.error(path, f"must be one of {choices}, got {raw!r}")
    return policy


def pairs(
    ctx: Context, path: YamlPath, raw: Any, fill: Callable[[str], str | None]
) -> dict[str, str]:
    """Compose's list-or-dict: `["K=V", "K"]` or `{K: V, K: null}`. A value-less key gets
    `fill(key)`; when that is None the key is dropped (as Compose does for environment)."""
    items: list[tuple[YamlPath, str, Any]] = []
    if isinstance(raw, dict):
        items = [((*path, key), key, value) for key, value in raw.items()]
    elif isinstance(raw, list):
        for index, entry in enumerate(raw):
            key, sep, text = str(entry).partition("=")
            items.append(((*path, index), key, text if sep else None))
    out: dict[str, str] = {}
    for where, key, value in items:
        if not key.strip():
            ctx.error(where, "missing a name before '='")
            continue
        if value is None:
            filled = fill(key)
            if filled is not None:
                out[key] = filled
            continue
        out[key] = to_str(value)
    return out


def _build(ctx: Context, path: YamlPath, raw: Any) -> BuildSpec | None:
    if raw is None:
        return None
    spec: Mapping[str, Any] = {"context": raw} if isinstance(raw, str) else raw
    context = str(spec.get("context") or ".")
    # Remote contexts (git URLs) are handed to the builder as they are.
    where = context if "://" in context or context.startswith("git@") else str(ctx.resolve(context))
    return BuildSpec(
        context=where,
        dockerfile=spec.get("dockerfile") or "Dockerfile",
        args=pairs(ctx, (*path, "args"), spec.get("args"), fill=ctx.environ.get),
        target=spec.get("target"),
    )


def _argv(ctx: Context, path: YamlPath, raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return tuple(str(part) for part in raw)
    try:
        return tuple(shlex.split(raw))
    except ValueError as exc:  # an unbalanced quote: say which word could not be split
        ctx.error(path, f"cannot split into words: {exc}")
        return None


def _environment(ctx: Context, path: YamlPath, raw: dict[str, Any]) -> dict[str, str]:
    """env_file entries first, in order, then `environment:` on top (Compose precedence)."""
    merged: dict[str, str] = {}
    for index, (written, fmt) in enumerate(env_files(raw.get("env_file"))):
        file = ctx.resolve(written)
        if not file.is_file():
            continue  # the semantic checks report required files that are missing
        listed = isinstance(raw["env_file"], list)
        entry = (*path, "env_file", index) if listed else (*path, "env_file")
        if fmt not in (None, "raw"):
            ctx.error(entry, f"unsupported env_file format '{fmt}' (only 'raw')")
            continue
        shown = ctx.shown(written)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            ctx.error(entry, f"cannot read env file '{shown}': {exc}")
            continue
        merged.update(parse_env(text, shown, ctx.environ.get, raw=fmt == "raw"))
    merged.update(pairs(ctx, (*path, "environment"), raw.get("environment"), ctx.environ.get))
    return merged


def env_files(raw: Any) -> list[tuple[str, str | None]]:
    """env_file as (path as written, format) pairs, whatever syntax the file used."""
    entries = [raw] if isinstance(raw, str | dict) else list(raw or ())
    out: list[tuple[str, str | None]] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append((entry, None))
        else:
            out.append((str(entry["path"]), entry.get("format")))
    return out


def env_file_required(entry: Any) -> bool:
    """Whether a missing env file is an error (`required: false` makes it optional)."""
    if isinstance(entry, dict):
        try:
            return to_bool(entry.get("required", True))
        except ValueError:
            return True
    return True


def _healthcheck(ctx: Context, path: YamlPath, raw: Any) -> Healthcheck | None:
    if raw is None:
        return None
    if ctx.optional(raw, "disable", path, to_bool, False):
        return Healthcheck(test=("NONE",))
    test = raw.get("test")
    argv: tuple[str, ...] = ()  # empty: keep the image's own HEALTHCHECK command
    if isinstance(test, str):
        argv = ("CMD-SHELL", test)
    elif isinstance(test, list) and test:
        argv = tuple(test)
        if argv[0] not in _HEALTH_TEST_KINDS:
            ctx.error(
                (*path, "test"),
                f"a test list must start with 'CMD', 'CMD-SHELL' or 'NONE', got '{argv[0]}'",
            )
    return Healthcheck(
        test=argv,
        interval=ctx.optional(raw, "interval", path, parse_duration, _HEALTH.interval),
        timeout=ctx.optional(raw, "timeout", path, parse_duration, _HEALTH.timeout),
        retries=ctx.optional(raw, "retries", path, to_int, _HEALTH.retries),
        start_period=ctx.optional(raw, "start_period", path, parse_duration, _HEALTH.start_period),
        start_interval=ctx.optional(
            raw, "start_interval", path, parse_duration, _HEALTH.start_interval
        ),
    )


def _depends_on(ctx: Context, path: YamlPath, raw: Any) -> dict[str, DependsOn]:
    if isinstance(raw, list):
        return {name: DependsOn() for name in raw}
    out: dict[str, DependsOn] = {}
    for name, spec in (raw or {}).items():
        where = (*path, name)
        condition = _CONDITIONS.get(spec.get("condition", "service_started"), "service_started")
        out[name] = DependsOn(
            condition=condition,
            required=ctx.optional(spec, "required", where, to_bool, True),
            restart=ctx.optional(spec, "restart", where, to_bool, False),
        )
    return out


def _replicas(ctx: Context, path: YamlPath, raw: dict[str, Any], deploy: dict[str, Any]) -> int:
    replicas = ctx.optional(deploy, "replicas", (*path, "deploy"), to_int, None)
    scale = ctx.optional(raw, "scale", path, to_int, None)
    mode = deploy.get("mode", "replicated")
    if mode not in ("replicated", "global"):
        hint = suggest(str(mode), ("replicated", "global"))
        ctx.error(
            (*path, "deploy", "mode"), f"must be 'replicated' or 'global', got '{mode}'{hint}"
        )
    elif mode == "global":
        # One replica per host: 1 on one host; on a fleet the engine counts the app hosts
        # that are up and allowed (plan.fleet_assign.global_hosts).
        for key, value in (("replicas", replicas), ("scale", scale)):
            if value is not None and value != 1:
                where = (*path, "deploy", "replicas") if key == "replicas" else (*path, "scale")
                ctx.error(
                    where,
                    f"deploy.mode 'global' runs one replica per host; {key} {value} contradicts it",
                )
        return 1
    if replicas is not None and scale is not None and replicas != scale:
        ctx.error(
            (*path, "scale"),
            f"scale ({scale}) and deploy.replicas ({replicas}) disagree; keep one of them",
        )
    for value in (replicas, scale):
        if value is not None:
            return value
    return _SERVICE.replicas


def _warn_shared_volume(
    ctx: Context, path: YamlPath, deploy: dict[str, Any], volumes: tuple[VolumeMount, ...]
) -> None:
    """Conveyor's default start-first order runs the new replica beside the old one: with a
    named volume mounted read-write, two processes share its files for a moment. SQLite
    copes (file locks); a database server may not, so say so unless the file chose."""
    if "order" in (deploy.get("update_config") or {}):
        return
    shared = [v.source for v in volumes if v.type == "volume" and v.source and not v.read_only]
    if shared:
        ctx.warn(
            (*path, "volumes"),
            f"start-first rollouts run two replicas on volume '{shared[0]}' at once (safe for "
            "SQLite, not for a database server): set deploy.update_config.order: stop-first "
            "(or start-first) to say which",
        )


def _update(ctx: Context, path: YamlPath, raw: Any, default: UpdateConfig) -> UpdateConfig:
    if raw is None:
        return default
    return UpdateConfig(
        parallelism=ctx.optional(raw, "parallelism", path, to_int, default.parallelism),
        delay=ctx.optional(raw, "delay", path, parse_duration, default.delay),
        failure_action=ctx.optional(
            raw, "failure_action", path, _failure_action, default.failure_action
        ),
        monitor=ctx.optional(raw, "monitor", path, parse_duration, default.monitor),
        max_failure_ratio=ctx.optional(
            raw, "max_failure_ratio", path, to_float, default.max_failure_ratio
        ),
        order=_ORDERS.get(raw.get("order"), default.order),
    )


def _failure_action(value: object) -> FailureAction:
    return _FAILURE_ACTIONS[one_of(value, _FAILURE_ACTIONS)]


def _limits(ctx: Context, path: YamlPath, raw: dict[str, Any]) -> Resources:
    return Resources(
        cpus=ctx.optional(raw, "cpus", path, to_float, None),
        memory=ctx.optional(raw, "memory", path, parse_bytes, None),
        pids=ctx.optional(raw, "pids", path, to_int, None),
    )


def _reservations(ctx: Context, path: YamlPath, resources: dict[str, Any]) -> Resources:
    raw = resources.get("reservations") or {}
    where = (*path, "reservations")
    return Resources(
        cpus=ctx.optional(raw, "cpus", where, to_float, None),
        memory=ctx.optional(raw, "memory", where, parse_bytes, None),
    )


# Service-level keys older files use for what deploy.resources.limits says.
_LEGACY_LIMITS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "cpus": ("cpus", to_float),
    "mem_limit": ("memory", parse_bytes),
    "pids_limit": ("pids", to_int),
}


def _service_limits(
    ctx: Context, path: YamlPath, raw: dict[str, Any], limits: Resources
) -> Resources:
    """deploy.resources.limits, completed by `cpus`, `mem_limit` and `pids_limit`; both
    spellings with different values is an error rather than a silent choice."""
    update: dict[str, Any] = {}
    for key, (field, convert) in _LEGACY_LIMITS.items():
        value = ctx.optional(raw, key, path, convert, None)
        if value is None:
            continue
        current = getattr(limits, field)
        if current is not None and current != value:
            ctx.error(
                (*path, key),
                f"{key} ({raw[key]}) and deploy.resources.limits.{field} disagree; "
                "keep one of them",
            )
            continue
        update[field] = value
    return limits.model_copy(update=update) if update else limits


def _container_name(ctx: Context, path: YamlPath, raw: dict[str, Any], replicas: int) -> None:
    name = raw.get("container_name")
    if name is None:
        return
    where = (*path, "container_name")
    if replicas > 1:
        ctx.error(
            where,
            f"names one container, but the service has {replicas} replicas, which need "
            "one name each: remove container_name (Conveyor names them <project>-<replica>)",
        )
    else:
        ctx.warn(
            where,
            "not used: Conveyor names containers <project>-<replica>, so a rollout can start "
            "the new container before the old one stops",
        )
