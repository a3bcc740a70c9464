"""The Docker Engine's events of Conveyor's containers (docker SDK), so drift is seen when it
happens rather than at the next heal interval.

`DockerEventWatcher` follows `GET /events`, filtered by the engine to the container actions
that can mean a replica drifted (`WATCHED_ACTIONS`) of containers carrying Conveyor's project
label, in a daemon thread, and hands each one to its caller as a `ContainerEvent`. It decides
nothing: the caller wakes the project's reconciler, which re-observes and acts only on what
differs (the events of a rollout's own stops therefore cost an observation, not a fight).

When dockerd goes away the stream ends or breaks; the watcher reconnects with backoff
(0.5 s doubling to 30 s) and reports the connection going down and coming back through
`on_connection`. Events of the time in between are not replayed: the caller re-observes once
the stream is back (and the reconciler itself does not heal while the engine is away).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import docker

from conveyor.runtime.protocol import LABEL_PROJECT, LABEL_REPLICA, LABEL_SERVICE

# Container actions that can leave a replica dead, gone, frozen, renamed or failing. `start`
# and `create` are left out: they are what every rollout does.
WATCHED_ACTIONS = ("die", "stop", "kill", "destroy", "oom", "rename", "pause", "health_status")
_HEALTH = "health_status"
_CONNECT_TIMEOUT = 10
BACKOFF = (0.5, 30.0)  # seconds before the first reconnection, and the most between two


@dataclass(frozen=True)
class ContainerEvent:
    """One event of a container of Conveyor's, as the engine reported it."""

    project: str  # the container's project label
    action: str  # one of WATCHED_ACTIONS
    container: str  # the container's id
    name: str = ""  # the container's name (its new one, for a rename)
    service: str = ""  # its service and replica labels ("" on a container without them)
    replica: str = ""
    status: str = ""  # health_status: "healthy", "unhealthy" or "starting"; else ""
    at: float = 0.0  # when, in seconds since the epoch by dockerd's clock

    @property
    def drift(self) -> bool:
        """Whether the event can mean something to correct. A container turning healthy or
        starting its checks is what a rollout's new replicas do: nothing to correct."""
        return self.action != _HEALTH or self.status == "unhealthy"

    def describe(self) -> str:
        """`destroy of web-2-1`, `health_status unhealthy of web-2-1`."""
        what = f"{self.action} {self.status}".rstrip()
        return f"{what} of {self.replica or self.name or self.container[:12]}"


def event_filters() -> dict[str, list[str]]:
    """The engine-side filter: container events of the watched actions, Conveyor's only."""
    return {"type": ["container"], "event": list(WATCHED_ACTIONS), "label": [LABEL_PROJECT]}


def container_event(raw: Mapping[str, Any]) -> ContainerEvent | None:
    """An event of the engine's stream (`/events`, decoded) as a ContainerEvent; None for
    anything else (another type, another action, a container without the project label)."""
    if raw.get("Type") != "container":
        return None
    action, _, status = str(raw.get("Action") or "").partition(":")
    if action not in WATCHED_ACTIONS:
        return None
    actor = raw.get("Actor") or {}
    attributes: Mapping[str, Any] = actor.get("Attributes") or {}
    project = attributes.get(LABEL_PROJECT)
    if not project:
        return None
    nanos = raw.get("timeNano")
    at = int(nanos) / 10**9 if nanos else float(raw.get("time") or 0)
    return ContainerEvent(
        project=str(project),
        action=action,
        container=str(actor.get("ID") or raw.get("id") or ""),
        name=str(attributes.get("name") or ""),
        service=str(attributes.get(LABEL_SERVICE) or ""),
        replica=str(attributes.get(LABEL_REPLICA) or ""),
        status=status.strip(),
        at=at,
    )


class EventStream(Protocol):
    """What `/events` returns (the SDK's CancellableStream): iterate, or close to end it."""

    def __iter__(self) -> Iterator[Mapping[str, Any]]: ...

    def close(self) -> None: ...


class _Followed:
    """The SDK's event stream with the client it came from: closing ends both (a client per
    connection, so a reconnection never reuses a pool whose engine went away)."""

    def __init__(self) -> None:
        # The SDK reads the event stream itself without a timeout (it stays quiet for as long
        # as nothing happens); this one bounds the version check that connecting makes.
        self._client: Any = docker.from_env(timeout=_CONNECT_TIMEOUT)
        try:
            self._stream: Any = self._client.api.events(decode=True, filters=event_filters())
        except Exception:
            self._client.close()
            raise

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self._stream)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._client.close()


def _open_stream() -> EventStream:
    """The engine's event stream, filtered; raises when the engine does not answer."""
    return _Followed()


class DockerEventWatcher:
    """Follows the engine's events in a daemon thread until `stop`.

    `on_event` gets each ContainerEvent (in the watcher's thread: it must be quick and must
    not raise; an exception is swallowed so one bad call does not end the watching);
    `on_connection(True, "")` is called each time the stream is open, and
    `on_connection(False, reason)` once each time it is lost (or cannot be opened at first).
    `open_stream` is the seam tests use for an engine that goes away."""

    def __init__(
        self,
        on_event: Callable[[ContainerEvent], None],
        *,
        on_connection: Callable[[bool, str], None] | None = None,
        open_stream: Callable[[], EventStream] = _open_stream,
        backoff: tuple[float, float] = BACKOFF,
        name: str = "docker-events",
    ) -> None:
        self.on_event = on_event
        self.on_connection = on_connection
        self.open_stream = open_stream
        self.backoff = backoff
        self.name = name
        self.connected: bool | None = None  # None: not tried yet
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: EventStream | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> DockerEventWatcher:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End the stream and the thread (waits up to `timeout` seconds for it)."""
        self._stopping.set()
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            _close(stream)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stopping.is_set():
            try:
                stream = self.open_stream()
            except Exception as e:  # the SDK raises transport errors of several kinds
                self._lost(f"cannot follow the Docker Engine's events: {e}")
                self._stopping.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            with self._lock:
                if self._stopping.is_set():
                    _close(stream)
                    return
                self._stream = stream
            delay = self.backoff[0]
            self._tell(True, "")
            reason = "the Docker Engine ended its event stream"
            try:
                for raw in stream:
                    event = container_event(raw)
                    if event is not None:
                        self._hand(event)
            except Exception as e:  # dockerd gone mid-stream: a broken chunked response
                reason = f"the Docker Engine's event stream broke: {e}"
            finally:
                with self._lock:
                    self._stream = None
                _close(stream)
            if self._stopping.is_set():
                return
            self._lost(reason)
            self._stopping.wait(delay)
            delay = min(delay * 2, self.backoff[1])

    def _hand(self, event: ContainerEvent) -> None:
        with contextlib.suppress(Exception):
            self.on_event(event)

    def _lost(self, reason: str) -> None:
        if self.connected is not False:  # told once per loss (and when the first try fails)
            self._tell(False, reason)

    def _tell(self, up: bool, reason: str) -> None:
        self.connected = up
        if self.on_connection is not None:
            with contextlib.suppress(Exception):
                self.on_connection(up, reason)


def _close(stream: EventStream) -> None:
    with contextlib.suppress(Exception):  # closing a stream whose engine is gone may raise
        stream.close()
