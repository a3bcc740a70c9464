"""ansible-runner's events (dicts, as its event handler receives them) -> ProvisionEvent, and
the recap per host. Pure: run.py feeds it, unit tests feed it recorded events."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from conveyor.model.provision import EventKind, HostRecap, ProvisionEvent

# Ansible's callback names -> what the CLI shows.
_RESULT_KINDS: dict[str, EventKind] = {
    "runner_on_ok": "task.ok",
    "runner_on_failed": "task.failed",
    "runner_on_skipped": "task.skipped",
    "runner_on_unreachable": "host.unreachable",
}


def translate(event: Mapping[str, Any]) -> ProvisionEvent | None:
    """The ProvisionEvent for one runner event, None for those the CLI does not show (item
    results, verbose output, the stats: `recap` reads those)."""
    name = str(event.get("event", ""))
    data: Mapping[str, Any] = event.get("event_data") or {}
    if name == "playbook_on_play_start":
        return ProvisionEvent(kind="play.started", task=str(data.get("play", "")))
    if name == "runner_on_start":
        return ProvisionEvent(
            kind="task.started", host=_host(data), task=_task(data), role=_role(data)
        )
    kind = _RESULT_KINDS.get(name)
    if kind is None:
        return None
    res: Mapping[str, Any] = data.get("res") or {}
    if kind == "task.failed" and data.get("ignore_errors"):
        kind = "task.ok"
    if kind == "task.ok" and res.get("changed"):
        kind = "task.changed"
    message = result_message(res) if kind in ("task.failed", "host.unreachable") else ""
    return ProvisionEvent(
        kind=kind,
        host=_host(data),
        task=_task(data),
        role=_role(data),
        message=message,
        diff=render_diff(res.get("diff")) if kind == "task.changed" else "",
    )


def result_message(res: Mapping[str, Any]) -> str:
    """Why a task failed, the way Ansible's own output says it: `msg`, else stderr, else the
    failed item's message."""
    said = [str(res[k]).strip() for k in ("msg", "stderr", "module_stderr", "reason") if res.get(k)]
    if said:
        # A command's "non-zero return code" says little without its stderr: both, then.
        return ": ".join(dict.fromkeys(said[:2]))
    for item in res.get("results") or []:
        if isinstance(item, Mapping) and item.get("failed"):
            return result_message(item)
    return "failed (Ansible gave no message)"


def render_diff(diff: Any) -> str:
    """A module's `diff` result (one or a list of {before, after, *_header} or a `prepared`
    text) as a unified diff."""
    parts = diff if isinstance(diff, list) else [diff] if isinstance(diff, Mapping) else []
    out: list[str] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        if part.get("prepared"):
            out.append(str(part["prepared"]).rstrip("\n"))
            continue
        before, after = part.get("before"), part.get("after")
        if not isinstance(before, str) or not isinstance(after, str) or before == after:
            continue
        lines = difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(part.get("before_header", "before")),
            tofile=str(part.get("after_header", "after")),
        )
        out.append("".join(lines).rstrip("\n"))
    return "\n".join(out)


class RecapBuilder:
    """Collects the failures per host while events arrive, then the recap from the stats."""

    def __init__(self) -> None:
        self.failed: dict[str, tuple[str, str]] = {}  # host -> (task, message), the first one
        self.stats: Mapping[str, Any] = {}

    def add(self, event: Mapping[str, Any], translated: ProvisionEvent | None) -> None:
        if event.get("event") == "playbook_on_stats":
            self.stats = event.get("event_data") or {}
        if translated is None or translated.host is None:
            return
        if translated.kind in ("task.failed", "host.unreachable"):
            self.failed.setdefault(translated.host, (translated.task, translated.message))

    def recap(self, order: list[str]) -> tuple[HostRecap, ...]:
        """One HostRecap per host the play reached, in `order` (the inventory's) first."""
        counts = {key: self.stats.get(key) or {} for key in _STAT_KEYS.values()}
        seen = set().union(*(set(c) for c in counts.values()), set(self.failed))
        hosts = [h for h in order if h in seen] + sorted(seen - set(order))
        out = []
        for host in hosts:
            task, message = self.failed.get(host, (None, None))
            values = {field: int(counts[key].get(host, 0)) for field, key in _STAT_KEYS.items()}
            out.append(HostRecap(host=host, failed_task=task, message=message, **values))
        return tuple(out)


# HostRecap's fields -> the keys of Ansible's stats.
_STAT_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "unreachable": "dark",
    "failed": "failures",
    "skipped": "skipped",
}


def _host(data: Mapping[str, Any]) -> str | None:
    host = data.get("host")
    return None if host is None else str(host)


def _task(data: Mapping[str, Any]) -> str:
    return str(data.get("task") or data.get("name") or "")


def _role(data: Mapping[str, Any]) -> str:
    return str(data.get("role") or "")
