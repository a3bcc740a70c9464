"""`deploy.mode` and `deploy.placement` of one service -> model.ServicePlacement, with the
line of every constraint so the placement planner's errors name it (docs/fleet.md)."""

from __future__ import annotations

import re
from typing import Any

from conveyor.model.placement import (
    Attribute,
    Constraint,
    ConstraintOp,
    ServicePlacement,
    SpreadPreference,
)
from conveyor.spec.context import Context
from conveyor.spec.values import to_int
from conveyor.spec.yamlpos import YamlPath

# Swarm's syntax: `node.labels.zone == a`, `node.hostname!=h1`; spaces around the operator
# are allowed, as Swarm allows them.
_CONSTRAINT = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.\-/]+?)\s*(?P<op>==|!=)\s*(?P<value>\S.*?)\s*$")
_LABEL_PREFIXES = ("node.labels.", "engine.labels.")
_SPREAD = re.compile(r"^\s*node\.labels\.(?P<label>\S+)\s*$")


def service_placement(ctx: Context, path: YamlPath, raw: dict[str, Any]) -> ServicePlacement | None:
    """None when the file says nothing about placement (replicated, any host)."""
    deploy = raw.get("deploy") or {}
    placement = deploy.get("placement") or {}
    mode = deploy.get("mode", "replicated")
    if mode not in ("replicated", "global"):
        mode = "replicated"  # spec.service reports the bad value
    if mode == "replicated" and not placement:
        return None
    where = (*path, "deploy", "placement")
    file, line = ctx.where((*path, "deploy", "mode") if mode == "global" else where)
    limit_path = (*where, "max_replicas_per_node")
    limit = ctx.optional(placement, "max_replicas_per_node", where, to_int, None)
    if limit is not None and limit < 0:
        ctx.error(limit_path, f"must be 0 (no limit) or more, got {limit}")
        limit = None
    return ServicePlacement(
        mode=mode,
        constraints=_constraints(ctx, (*where, "constraints"), placement.get("constraints")),
        preferences=_preferences(ctx, (*where, "preferences"), placement.get("preferences")),
        # Swarm's 0 means no limit.
        max_replicas_per_node=limit or None,
        file=file,
        line=line,
        max_replicas_line=ctx.where(limit_path)[1] if limit else None,
    )


def _constraints(ctx: Context, path: YamlPath, raw: Any) -> tuple[Constraint, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, "must be a list of constraints such as node.labels.zone==a")
        return ()
    out: list[Constraint] = []
    for i, item in enumerate(raw):
        found = _constraint(ctx, (*path, i), str(item))
        if found is not None:
            out.append(found)
    return tuple(out)


def _constraint(ctx: Context, path: YamlPath, text: str) -> Constraint | None:
    match = _CONSTRAINT.match(text)
    if match is None:
        ctx.error(path, f"'{text}' is not a constraint: write ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE")
        return None
    key, value = match["key"], match["value"]
    op: ConstraintOp = "==" if match["op"] == "==" else "!="
    file, line = ctx.where(path)

    def made(attribute: Attribute, label: str | None = None) -> Constraint:
        return Constraint(
            attribute=attribute,
            label=label,
            op=op,
            value=value,
            text=text.strip(),
            file=file,
            line=line,
        )

    if key in ("node.hostname", "node.id"):
        return made("hostname")  # a fleet host's id is its inventory name
    if key == "node.role":
        return made("role")
    for prefix in _LABEL_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            return made("label", key[len(prefix) :])
    # node.platform.os/arch and the like: the inventory does not record them.
    ctx.warn(
        path,
        f"ignored: Conveyor matches node.hostname, node.id, node.role and node.labels, not {key}",
    )
    return None


def _preferences(ctx: Context, path: YamlPath, raw: Any) -> tuple[SpreadPreference, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, "must be a list such as [{spread: node.labels.zone}]")
        return ()
    out: list[SpreadPreference] = []
    for i, item in enumerate(raw):
        spread = item.get("spread") if isinstance(item, dict) else None
        match = _SPREAD.match(str(spread)) if spread is not None else None
        if match is None:
            ctx.error((*path, i), "must be {spread: node.labels.NAME}")
            continue
        file, line = ctx.where((*path, i))
        out.append(SpreadPreference(label=match["label"], file=file, line=line))
    return tuple(out)
