"""Logs as use cases: the collector a long-running process hosts (the agent of `conveyor up`,
the GitOps server per environment), and the search `conveyor logs` and the API answer from
the embedded store (`observe.logs`; docs/logs.md).

The store is `logs.db` in the project's state directory. Before anything has collected a
project's logs there is no store: `conveyor logs SERVICE` then reads the Docker Engine as it
always did (`deploy.logs`), and says so.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from conveyor.app.dora import parse_window
from conveyor.app.log_shipping import logs_config_for_up, open_project_shipping
from conveyor.app.project import Project
from conveyor.app.views import ComponentView
from conveyor.errors import LockBusy, LogQueryError, ShipError, SpecError, StoreError
from conveyor.model.events import Event, EventKind, Level, Reporter
from conveyor.model.log_shipping import LogShipping
from conveyor.model.logs import LogQuery, LogRecord, LogSettings, Stream
from conveyor.observe.logs.collect import Collector, collecting_pid
from conveyor.observe.logs.parse import level_of
from conveyor.observe.logs.retention import Retention
from conveyor.observe.logs.ship import Shipping
from conveyor.observe.logs.store import LOGS_DB, LogStore
from conveyor.runtime.log_protocol import ContainerLogs
from conveyor.store.timeline import Timeline

FOLLOW_POLL = 0.25  # seconds between looks for new records in a live tail
MAX_LIMIT = 10_000
_TIMESTAMP = re.compile(r"\d+(?:\.\d+)?")
_RELATIVE_HINT = "a duration before now (10m, 2h, 3d), an ISO 8601 time or a UNIX timestamp"


class LogTail(BaseModel):
    """Records that came in after a position, oldest first, and the position to ask after
    next (a record id: the server's live tail, `GET .../logs/stream`)."""

    records: list[LogRecord]
    position: int


def store_path(project: Project) -> Path:
    return project.paths().state_dir / LOGS_DB


def has_store(project: Project) -> bool:
    return store_path(project).exists()


def component(state_dir: Path, now: float | None = None) -> ComponentView | None:
    """The log store's line in `conveyor status`: running while a collector writes it (the
    agent or the server), healthy when it also opens and answers; None when the project has
    neither a store nor a collector (logs off, or never collected)."""
    path = state_dir / LOGS_DB
    pid = collecting_pid(state_dir)
    if pid is None and not path.exists():
        return None
    view = ComponentView(name="log store", url=str(path), running=pid is not None, healthy=False)
    if pid:
        view.pid = pid
    if not path.exists():
        return view
    try:
        store = LogStore.open(path, create=False)
        try:
            stats = store.stats()
        finally:
            store.close()
    except (StoreError, sqlite3.Error) as e:
        view.detail = f"cannot be read: {e}"
        return view
    view.healthy = view.running
    size = f"{stats.bytes / 2**20:.1f} MiB"
    newest = ""
    if stats.newest is not None:
        ago = max(0.0, (time.time() if now is None else now) - stats.newest)
        newest = f", newest {_ago(ago)} ago"
    view.detail = f"{stats.lines:,} lines, {size}{newest}" + (
        "" if view.running else "; no collector runs (`conveyor up` starts one)"
    )
    return view


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


# the query -----------------------------------------------------------------------------------


def log_query(
    services: Sequence[str] = (),
    *,
    grep: str | None = None,
    level: str | None = None,
    since: str | None = None,
    until: str | None = None,
    release: int | None = None,
    fields: Sequence[str] = (),
    replicas: Sequence[str] = (),
    streams: Sequence[str] = (),
    limit: int = 100,
    hosts: Sequence[str] = (),
    now: float | None = None,
    names: dict[str, str] | None = None,
) -> LogQuery:
    """The filters as `conveyor logs` and the API take them, checked. LogQueryError names
    the option at fault; `names` maps option keys to how the caller spells them (the CLI's
    `--since`, the API's `since`)."""
    now = time.time() if now is None else now
    names = names or {}

    def name(key: str) -> str:
        return names.get(key, key)

    wanted = None
    if level is not None:
        wanted = level_of(level)
        if wanted is None:
            raise LogQueryError(
                name("level"),
                f"unknown level {level!r} (trace, debug, info, warning, error, critical)",
            )
    pairs: dict[str, str] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LogQueryError(name("field"), f"expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    bad = [s for s in streams if s not in ("stdout", "stderr")]
    if bad:
        raise LogQueryError(name("stream"), f"stdout or stderr, got {bad[0]!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise LogQueryError(name("limit"), f"between 1 and {MAX_LIMIT}, got {limit}")
    start = None if since is None else point_in_time(since, now, name("since"))
    end = None if until is None else point_in_time(until, now, name("until"))
    if start is not None and end is not None and end < start:
        raise LogQueryError(name("until"), "is before --since: nothing can match")
    stream_values: tuple[Stream, ...] = tuple(
        "stderr" if s == "stderr" else "stdout" for s in streams
    )
    return LogQuery(
        services=tuple(services),
        replicas=tuple(replicas),
        hosts=tuple(hosts),
        release=release,
        level=wanted,
        streams=stream_values,
        text=grep or "",
        fields=pairs,
        since=start,
        until=end,
        limit=limit,
    )


def point_in_time(text: str, now: float, option: str) -> float:
    """`10m` (before now), `2026-12-06T13:00:00Z` (ISO 8601; without a zone: this host's
    local time) or `1765000000` (UNIX seconds) -> UNIX seconds."""
    value = text.strip()
    if _TIMESTAMP.fullmatch(value):
        return float(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    else:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # the host's local time, as `date` shows it
        return moment.timestamp()
    try:
        return now - parse_window(value)
    except ValueError:
        raise LogQueryError(option, f"cannot read {text!r}: {_RELATIVE_HINT}") from None


# searching -----------------------------------------------------------------------------------


def search(path: Path, query: LogQuery) -> list[LogRecord]:
    """The newest `query.limit` records that match, newest first (none without a store)."""
    if not path.exists():
        return []
    store = LogStore.open(path, create=False)
    try:
        return store.search(query)
    finally:
        store.close()


def tail(path: Path, query: LogQuery, after: int | None, limit: int = 1000) -> LogTail:
    """Records that came in after id `after` and match (oldest first), and the id to ask
    after next time. `after` None: from now on (no records, the current position). No store
    yet: nothing, position 0."""
    if not path.exists():
        return LogTail(records=[], position=after or 0)
    store = LogStore.open(path, create=False)
    try:
        if after is None:
            return LogTail(records=[], position=store.last_id())
        records = store.tail(query, after, limit)
        return LogTail(records=records, position=records[-1].id if records else after)
    finally:
        store.close()


def follow(
    path: Path,
    query: LogQuery,
    stopping: threading.Event | None = None,
    *,
    backlog: bool = True,
    poll: float = FOLLOW_POLL,
) -> Iterator[LogRecord]:
    """Matching records oldest first: with `backlog` the newest `query.limit` already
    stored, then every new one as it is written, across replicas and releases, until
    `stopping` is set (or the consumer stops iterating)."""
    stopping = stopping or threading.Event()
    store = LogStore.open(path, create=False)
    try:
        position = store.last_id()
        if backlog:
            found = store.search(query)
            if found:
                position = max(position, found[0].id)
            yield from reversed(found)
        while not stopping.is_set():
            records = store.tail(query, position)
            if records:
                position = records[-1].id
                yield from records
                continue
            stopping.wait(poll)
    finally:
        store.close()


# collecting ----------------------------------------------------------------------------------


def retention(settings: LogSettings) -> Retention:
    """The store's retention as x-conveyor.logs asks (its defaults otherwise)."""
    base = Retention()
    return Retention(
        max_age=settings.max_age or base.max_age,
        max_bytes=settings.max_bytes or base.max_bytes,
    )


def collector(
    project: Project,
    environment: str | None,
    report: Callable[[str], None] | None = None,
    shipping: LogShipping | None = None,
    events: Reporter | None = None,
) -> Collector | None:
    """The project's collector (not started), None when its compose file turns collection
    off (`x-conveyor.logs: false`). It ships what it stores where `shipping` says (the
    server: conveyor.yaml's `logs:`), or, when None, where the file CONVEYOR_LOGS_CONFIG names
    says (`conveyor up`; docs/logs-shipping.md); the shippers report through `events`. A
    destination that cannot be opened is reported and the logs are collected without it."""
    settings = project.stack().logs
    if not settings.collect:
        return None
    say = report or (lambda _msg: None)
    paths = project.paths()
    sink: Shipping | None = None
    try:
        spec = shipping
        if spec is None:
            spec = logs_config_for_up(project.environ, paths.compose_file.parent)
        sink = open_project_shipping(spec, paths.state_dir, project.environ, events)
    except (SpecError, ShipError) as e:
        say(f"logs are collected but not shipped: {e}")
    return Collector(
        paths.project,
        environment,
        store_path(project),
        log_engines(project),
        policy=retention(settings),
        report=report,
        sink=sink,
    )


def log_engines(project: Project) -> ContainerLogs | dict[str | None, ContainerLogs]:
    """The engines the project's collector follows: this machine's, or on a fleet (app hosts
    in conveyor.yaml) every app host's through its SSH tunnel, and this machine's for CI jobs
    (docs/logs.md, "On a fleet")."""
    from conveyor.deploy.fleet_engines import FleetEngines
    from conveyor.deploy.fleet_logs import fleet_log_engines
    from conveyor.runtime.docker_logs import DockerLogs

    fleet = project.fleet()
    if not fleet.with_role("app"):
        return DockerLogs()
    engines = FleetEngines(fleet, project.paths().run_dir / "fleet")
    return fleet_log_engines(engines, DockerLogs())


def start_collector(
    project: Project,
    environment: str | None,
    report: Callable[[str], None],
    shipping: LogShipping | None = None,
    events: Reporter | None = None,
) -> Collector | None:
    """Start the project's collector in background threads, unless its compose file turns
    collection off or another process already collects into its store (`report` says so:
    the agent goes on healing without it). The caller stops it (its shippers too)."""
    c = collector(project, environment, report, shipping, events)
    if c is None:
        return None
    try:
        c.start()
    except (LockBusy, StoreError) as e:
        report(f"logs are not collected by this process: {e}")
        if c.sink is not None:
            c.sink.stop(0)
        return None
    return c


class EnvironmentEvents:
    """A timeline's events of one environment, as a Reporter (the server's shippers)."""

    def __init__(self, timeline: Timeline, environment: str) -> None:
        self.timeline = timeline
        self.environment = environment

    def emit(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
    ) -> Event:
        return self.timeline.emit(kind, message, level, data, environment=self.environment)
