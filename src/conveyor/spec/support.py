"""What Conveyor does with every key of the Compose Specification: supported, warned
(accepted, not done: `conveyor plan` says so with file:line), or refused (an error that
says why). `docs/compose-support.md` is this table in prose; a test keeps both covering
every top-level and service key of the vendored Compose schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from conveyor.spec.context import Context
from conveyor.spec.yamlpos import SpecWarning, YamlPath, dotted

Status = Literal["supported", "warned", "refused"]


@dataclass(frozen=True)
class Support:
    status: Status
    note: str = ""  # for warned and refused keys: what happens instead, or what to do


def _ok(note: str = "") -> Support:
    return Support("supported", note)


def _warn(note: str) -> Support:
    return Support("warned", note)


def _refuse(note: str) -> Support:
    return Support("refused", note)


_IGNORED = "ignored"

TOP_LEVEL: dict[str, Support] = {
    "version": _warn("ignored: obsolete in the Compose Specification"),
    "name": _ok("the project name"),
    "include": _ok("other projects' resources, loaded with their own directory and .env"),
    "services": _ok(),
    "networks": _ok(
        "bridge networks Conveyor owns, subnets from its pool; internal, external, name, "
        "labels and one ipam subnet (docs/networking.md)"
    ),
    "volumes": _ok("named volumes; driver and driver_opts are passed to Docker"),
    "secrets": _ok("file or environment; mounted read-only under /run/secrets"),
    "configs": _ok("file, content or environment; mounted read-only"),
    "models": _warn("ignored: Conveyor runs no model runner"),
    "jobs": _warn(
        "ignored: write a service that others wait on with service_completed_successfully"
    ),
}

SERVICE: dict[str, Support] = {
    "annotations": _warn("ignored: needs Docker Engine API 1.43; Conveyor speaks 1.41"),
    "attach": _warn("ignored: `conveyor logs SERVICE` shows any service's output"),
    "blkio_config": _warn(_IGNORED),
    "build": _ok("context, dockerfile, args and target; other build keys are warned"),
    "cap_add": _ok(),
    "cap_drop": _ok(),
    "cgroup": _warn(_IGNORED),
    "cgroup_parent": _warn(_IGNORED),
    "command": _ok(),
    "configs": _ok("mounted read-only at target (default `/NAME`); uid and gid are warned"),
    "container_name": _warn(
        "not used with one replica (containers are named `PROJECT-REPLICA`); refused with more"
    ),
    "cpu_count": _warn("ignored: Windows only"),
    "cpu_percent": _warn("ignored: Windows only"),
    "cpu_period": _warn(_IGNORED),
    "cpu_quota": _warn(_IGNORED),
    "cpu_rt_period": _warn(_IGNORED),
    "cpu_rt_runtime": _warn(_IGNORED),
    "cpu_shares": _ok(),
    "cpus": _ok("same as deploy.resources.limits.cpus"),
    "cpuset": _ok(),
    "credential_spec": _warn("ignored: Windows only"),
    "depends_on": _ok("start order, conditions, required, restart"),
    "deploy": _ok(
        "mode, replicas, resources, restart_policy, update_config, rollback_config; "
        "placement on a fleet (warned on one host); labels and endpoint_mode are warned"
    ),
    "develop": _warn("ignored: file watching is for `docker compose watch`"),
    "device_cgroup_rules": _ok(),
    "devices": _ok(),
    "dns": _ok(),
    "dns_opt": _ok(),
    "dns_search": _ok(),
    "domainname": _ok(),
    "entrypoint": _ok(),
    "env_file": _ok(),
    "environment": _ok(),
    "expose": _ok("served at the service's name through HAProxy (TCP; UDP is warned)"),
    "extends": _ok("from this file or another"),
    "external_links": _warn("ignored: containers outside the project are not linked"),
    "extra_hosts": _ok(),
    "gpus": _refuse("Conveyor does not pass GPUs to replicas"),
    "group_add": _ok(),
    "healthcheck": _ok("start_interval needs API 1.44 and is warned"),
    "hostname": _ok(),
    "image": _ok(),
    "init": _ok("default true: docker-init forwards the stop signal"),
    "ipc": _ok("private, shareable or host"),
    "isolation": _warn("ignored: Windows only"),
    "label_file": _warn(_IGNORED),
    "labels": _ok(),
    "links": _warn("ignored: services reach each other by name"),
    "logging": _ok(),
    "mac_address": _warn(_IGNORED),
    "mem_limit": _ok("same as deploy.resources.limits.memory"),
    "mem_reservation": _ok(),
    "mem_swappiness": _ok(),
    "memswap_limit": _ok(),
    "models": _warn("ignored: Conveyor runs no model runner"),
    "network_mode": _ok("left out: the project's networks; 'host': the host's; others refused"),
    "networks": _ok("attachments and aliases; fixed addresses are refused"),
    "oom_kill_disable": _warn(_IGNORED),
    "oom_score_adj": _ok(),
    "pid": _ok(),
    "pids_limit": _ok("same as deploy.resources.limits.pids"),
    "platform": _ok(),
    "ports": _ok(
        "every entry: HAProxy serves TCP ones on the published port and at the service's "
        "name; UDP is published by Docker for a single replica"
    ),
    "post_start": _warn("ignored: lifecycle hooks are not run"),
    "pre_start": _warn("ignored: lifecycle hooks are not run"),
    "pre_stop": _warn("ignored: lifecycle hooks are not run"),
    "privileged": _ok(),
    "profiles": _ok("--profile or COMPOSE_PROFILES"),
    "provider": _refuse("a provider service runs a plugin, not a container"),
    "pull_policy": _ok(),
    "pull_refresh_after": _warn(_IGNORED),
    "read_only": _ok(),
    "restart": _ok("unset: Conveyor replaces every replica that exits"),
    "runtime": _ok(),
    "scale": _ok(),
    "secrets": _ok(),
    "security_opt": _ok(),
    "shm_size": _ok(),
    "stdin_open": _warn("ignored: replicas have no terminal"),
    "stop_grace_period": _ok(),
    "stop_signal": _ok(),
    "storage_opt": _warn(_IGNORED),
    "sysctls": _ok(),
    "tmpfs": _ok(),
    "tty": _warn("ignored: replicas have no terminal"),
    "ulimits": _ok(),
    "umask": _warn(_IGNORED),
    "use_api_socket": _refuse("replicas get no access to the Docker Engine"),
    "user": _ok(),
    "userns_mode": _ok(),
    "uts": _warn(_IGNORED),
    "volumes": _ok(),
    "volumes_from": _refuse(
        "replicas come and go during rollouts: mount the same named volume in both services"
    ),
    "working_dir": _ok(),
}

# Deeper keys Conveyor accepts without doing what they say. Paths start at the service.
NESTED: dict[YamlPath, Support] = {
    ("deploy", "labels"): _warn("ignored: put labels on the service"),
    ("deploy", "placement"): _warn(
        "ignored: Conveyor places every replica on this host (on a fleet it is done: docs/fleet.md)"
    ),
    ("deploy", "endpoint_mode"): _warn("ignored: HAProxy balances over the replicas"),
    ("deploy", "resources", "reservations", "cpus"): _warn(
        "ignored: Docker without Swarm cannot reserve CPU"
    ),
    ("deploy", "resources", "reservations", "devices"): _refuse(
        "Conveyor does not pass devices such as GPUs through reservations"
    ),
    ("deploy", "resources", "reservations", "generic_resources"): _warn(_IGNORED),
    ("deploy", "restart_policy", "delay"): _warn(
        "not enforced: the agent waits with its own backoff (1 s, doubling to 60 s)"
    ),
    ("deploy", "restart_policy", "max_attempts"): _warn(
        "not enforced: the agent keeps restarting with its backoff"
    ),
    ("deploy", "restart_policy", "window"): _warn(_IGNORED),
    ("healthcheck", "start_interval"): _warn(
        "ignored: needs Docker Engine API 1.44; Conveyor speaks 1.41"
    ),
    ("build", "dockerfile_inline"): _refuse(
        "write the Dockerfile into the build context and name it in 'dockerfile'"
    ),
    **{
        ("build", key): _warn("ignored by Conveyor's builder")
        for key in (
            "additional_contexts",
            "cache_from",
            "cache_to",
            "entitlements",
            "extra_hosts",
            "isolation",
            "labels",
            "network",
            "no_cache",
            "no_cache_filter",
            "platforms",
            "privileged",
            "provenance",
            "pull",
            "sbom",
            "secrets",
            "shm_size",
            "ssh",
            "tags",
            "ulimits",
        )
    },
}

# Keys whose warning or refusal the model builder words for the case at hand.
_DECIDED_ELSEWHERE = frozenset({"network_mode", "container_name"})


# Warned only when the project runs on one host (the inventory is conveyor.yaml's, which the
# compose loader does not read: `Loaded.one_host`, given by app.project): a fleet does them.
ON_ONE_HOST: frozenset[YamlPath] = frozenset({("deploy", "placement")})


def check_support(ctx: Context) -> None:
    """Warn (or refuse) every key written that Conveyor does not do as the file says (those
    of ON_ONE_HOST: see `one_host_warnings`)."""
    data: Mapping[str, Any] = ctx.doc.data
    for key in data:
        _check(ctx, (key,), TOP_LEVEL.get(key))
    for name, raw in (data.get("services") or {}).items():
        if not isinstance(raw, dict):
            continue
        base: YamlPath = ("services", name)
        for key in raw:
            if key not in _DECIDED_ELSEWHERE:
                _check(ctx, (*base, key), SERVICE.get(key))
        for sub, support in NESTED.items():
            if sub not in ON_ONE_HOST and _has(raw, sub):
                _check(ctx, (*base, *sub), support)


def one_host_warnings(ctx: Context) -> list[SpecWarning]:
    """The warnings of the keys a fleet does but one host ignores (ON_ONE_HOST)."""
    out: list[SpecWarning] = []
    for name, raw in (ctx.doc.data.get("services") or {}).items():
        if not isinstance(raw, dict):
            continue
        for sub in sorted(ON_ONE_HOST):
            if _has(raw, sub):
                path: YamlPath = ("services", name, *sub)
                file, line = ctx.where(path)
                out.append(SpecWarning(file, line, dotted(path), NESTED[sub].note))
    return out


def _check(ctx: Context, path: YamlPath, support: Support | None) -> None:
    if support is None or support.status == "supported":
        return  # x- extensions, or a key the schema check already refused
    if support.status == "warned":
        ctx.warn(path, support.note)
    else:
        ctx.error(path, f"not supported: {support.note}")


def _has(raw: Mapping[str, Any], path: YamlPath) -> bool:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return node is not None


def markdown_tables() -> str:
    """The three tables of docs/compose-support.md, as the code decides them."""

    def table(title: str, rows: dict[str, Support]) -> str:
        lines = [f"### {title}", "", "| key | status | what Conveyor does |", "|---|---|---|"]
        lines += [f"| `{key}` | {s.status} | {s.note} |" for key, s in sorted(rows.items())]
        return "\n".join(lines)

    nested = {".".join(map(str, path)): support for path, support in NESTED.items()}
    return "\n\n".join(
        [
            table("Top-level keys", TOP_LEVEL),
            table("Service keys", SERVICE),
            table("Deeper service keys that are not done as written", nested),
        ]
    )
