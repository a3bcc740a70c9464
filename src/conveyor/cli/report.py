"""What `status` and `history` report, as plain data (the --json form) and as Rich tables.

The JSON shapes are documented in docs/cli.md; change them only together with that page.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from conveyor.deploy.engine import Engine
from conveyor.model.release import Observed
from conveyor.store.db import Store

JSON_VERSION = 1


def status_data(engine: Engine, observed: Observed, agent_pid: int | None) -> dict[str, Any]:
    store = engine.store
    cur = store.current_release()
    ports = store.ports()
    services: list[dict[str, Any]] = []
    names = list(cur.order()) if cur else []
    names += sorted({r.service for r in observed.replicas} - set(names))
    for name in names:
        sr = cur.services.get(name) if cur else None
        fport = ports.get(f"frontend:{name}") if sr and sr.service.routed else None
        reps = observed.of(name)
        services.append(
            {
                "name": name,
                "desired_replicas": sr.service.replicas if sr else 0,
                "running_replicas": sum(1 for r in reps if r.running),
                "image": sr.image_ref if sr else None,
                "spec_hash": sr.spec_hash if sr else None,
                "url": f"http://127.0.0.1:{fport}" if fport else None,
                "replicas": [
                    {
                        "name": r.replica,
                        "release": r.release,
                        "port": r.port,
                        "running": r.running,
                        "exit_code": r.exit_code,
                        "health": r.health,
                        "router": r.router,
                        "current": bool(sr and r.spec_hash == sr.spec_hash),
                        "container": r.container_id[:12],
                        "uptime": round(time.time() - r.started_at, 1)
                        if r.running and r.started_at
                        else None,
                    }
                    for r in sorted(reps, key=lambda r: r.replica)
                ],
            }
        )
    return {
        "version": JSON_VERSION,
        "project": engine.project,
        "release": cur.number if cur else None,
        "commit": cur.commit if cur else None,
        "router": {"running": engine.router.running(), "stats_url": _stats_url(ports)},
        "agent": {"running": agent_pid is not None, "pid": agent_pid},
        "services": services,
    }


def _stats_url(ports: dict[str, int]) -> str | None:
    return f"http://127.0.0.1:{ports['stats']}/stats" if "stats" in ports else None


def status_table(data: dict[str, Any]) -> Table:
    t = Table(title=f"{data['project']} — release {data['release'] or '-'}", title_justify="left")
    for col in ("service", "replica", "release", "port", "state", "health", "router", "url"):
        t.add_column(col)
    for s in data["services"]:
        first = True
        for r in s["replicas"] or [None]:
            url = s["url"] or "" if first else ""
            svc = f"{s['name']} ({s['running_replicas']}/{s['desired_replicas']})" if first else ""
            first = False
            if r is None:
                t.add_row(svc, "-", "", "", "[red]none[/]", "", "", url)
                continue
            state = "[green]running[/]" if r["running"] else f"[red]exited {r['exit_code']}[/]"
            health = {"healthy": "[green]healthy[/]", "unhealthy": "[red]unhealthy[/]"}.get(
                r["health"], r["health"]
            )
            router = {"ready": "[green]ready[/]", "drain": "[yellow]drain[/]"}.get(
                r["router"], r["router"]
            )
            rel = str(r["release"]) + ("" if r["current"] else " (old)")
            t.add_row(svc, r["name"], rel, str(r["port"]), state, health, router, url)
    return t


def history_data(store: Store, limit: int) -> dict[str, Any]:
    rows = store.rollouts(limit=limit)
    return {
        "version": JSON_VERSION,
        "rollouts": [
            {
                "id": r.id,
                "kind": r.kind,
                "from_release": r.from_release,
                "to_release": r.to_release,
                "status": r.status,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "duration": None if r.duration is None else round(r.duration, 3),
                "actor": r.actor,
                "reason": r.reason,
                "error": r.error,
            }
            for r in rows
        ],
        "releases": [
            {
                "number": rel.number,
                "created_at": rel.created_at,
                "commit": rel.commit,
                "services": {
                    n: {"image": sr.image_ref, "spec_hash": sr.spec_hash}
                    for n, sr in rel.services.items()
                },
            }
            for rel in store.releases(limit=limit)
        ],
    }


def history_table(data: dict[str, Any]) -> Table:
    t = Table(title="rollouts (newest first)", title_justify="left")
    for col in ("id", "when", "kind", "release", "outcome", "duration", "detail"):
        t.add_column(col)
    colours = {
        "succeeded": "green",
        "rolled_back": "yellow",
        "failed": "red",
        "paused": "yellow",
        "interrupted": "magenta",
        "running": "cyan",
    }
    for r in data["rollouts"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"]))
        rel = f"{r['from_release'] or '-'} → {r['to_release'] or '-'}"
        dur = "" if r["duration"] is None else f"{r['duration']:.1f}s"
        c = colours.get(r["status"], "white")
        t.add_row(
            str(r["id"]),
            when,
            r["kind"],
            rel,
            f"[{c}]{r['status']}[/]",
            dur,
            r["error"] or r["reason"],
        )
    return t
