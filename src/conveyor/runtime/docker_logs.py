"""`ContainerLogs` on the Docker Engine: the project's containers and their output, read from
`GET /containers/{id}/logs?timestamps=1` as the log collector needs it.

The SDK's `logs()` merges stdout and stderr and reads one frame per call; the collector needs
each entry's stream and reads tens of thousands of entries a second, so this module reads the
response itself: the HTTP body in large reads, the chunked transfer encoding and the engine's
multiplexed frames (8-byte header: stream, size) decoded here (`FrameDecoder`, pure). A TTY
container's output is one raw stream of lines.
"""

from __future__ import annotations

import calendar
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import docker
import docker.errors
import requests

from conveyor.errors import EngineUnreachable
from conveyor.runtime.docker_errors import translated, unreachable
from conveyor.runtime.log_protocol import (
    STDERR,
    STDOUT,
    ContainerRun,
    Frame,
    LogContainer,
)
from conveyor.runtime.protocol import LABEL_PROJECT

_READ = 256 * 1024  # bytes asked of the socket at a time
_HEADER = struct.Struct(">BxxxL")
# Nanoseconds per unit of an n-digit fraction of a second.
_SCALE: tuple[int, ...] = tuple(int(10 ** (9 - n)) for n in range(10))
_POOL = 64  # connections kept to the engine: one per followed container, and a few more


def parse_timestamp(text: str, _cache: dict[str, int] = {}) -> int:  # noqa: B006 — a cache
    """An RFC 3339 timestamp as the engine writes it (UTC, `Z`, nanoseconds with trailing
    zeros dropped: `2026-12-06T13:58:50.3268Z`) -> nanoseconds since the epoch."""
    whole = text[:19]
    seconds = _cache.get(whole)
    if seconds is None:
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        if len(_cache) > 4096:
            _cache.clear()
        _cache[whole] = seconds
    rest = text[19:]
    nanos = 0
    if rest.startswith("."):
        digits = rest[1:].rstrip("Z")
        end = 0
        while end < len(digits) and digits[end].isdigit():
            end += 1
        nanos = int(digits[:end][:9].ljust(9, "0")) if end else 0
    return seconds * 1_000_000_000 + nanos


class FrameDecoder:
    """The logs API's body (after the chunked encoding) -> frames. Pure: feed bytes as they
    come, get the entries they complete."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self._buf = b""

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf + data if self._buf else data
        out: list[Frame] = []
        if self.tty:
            *lines, self._buf = buf.split(b"\n")
            for raw in lines:
                frame = _frame(STDOUT, raw.rstrip(b"\r"), True)
                if frame is not None:
                    out.append(frame)
            return out
        pos = 0
        end = len(buf)
        unpack = _HEADER.unpack_from
        while end - pos >= 8:
            stream, size = unpack(buf, pos)
            if end - pos - 8 < size:
                break
            payload = buf[pos + 8 : pos + 8 + size]
            pos += 8 + size
            complete = payload.endswith(b"\n")
            frame = _frame(STDERR if stream == STDERR else STDOUT, payload, complete)
            if frame is not None:
                out.append(frame)
        self._buf = buf[pos:]
        return out

    def end(self) -> list[Frame]:
        """What is left when the body ends: a TTY's last line without its newline."""
        rest, self._buf = self._buf, b""
        if self.tty and rest:
            frame = _frame(STDOUT, rest.rstrip(b"\r"), True)
            return [] if frame is None else [frame]
        return []


def _frame(stream: int, payload: bytes, complete: bool) -> Frame | None:
    """`<timestamp> <text>\\n` -> a frame; None for a payload without a timestamp."""
    cut = payload.find(b" ")
    if cut < 20:
        return None
    end = len(payload) - 1 if complete and payload.endswith(b"\n") else len(payload)
    return (
        stream,
        stamp_of(payload[:cut]),
        payload[cut + 1 : end].decode("utf-8", "replace"),
        complete,
    )


def stamp_of(raw: bytes, _seconds: dict[bytes, int] = {}) -> int:  # noqa: B006 — a cache
    """`parse_timestamp` of the engine's usual form (`...T13:58:50.326812957Z`) straight
    from bytes: the seconds looked up by their text, the fraction read as a number (the
    generic parse costs a third of a frame's decoding; it runs for any other form)."""
    whole = raw[:19]
    seconds = _seconds.get(whole)
    if seconds is None:
        text = whole.decode("ascii", "replace")
        if len(text) != 19 or not text[:4].isdigit():
            return parse_timestamp(raw.decode("ascii", "replace"))
        seconds = parse_timestamp(text + "Z") // 1_000_000_000
        if len(_seconds) > 4096:
            _seconds.clear()
        _seconds[whole] = seconds
    if raw[-1:] != b"Z":
        return parse_timestamp(raw.decode("ascii", "replace"))
    if len(raw) == 20:
        return seconds * 1_000_000_000
    fraction = raw[20:-1]
    if raw[19:20] != b"." or not fraction.isdigit() or len(fraction) > 9:
        return parse_timestamp(raw.decode("ascii", "replace"))
    return seconds * 1_000_000_000 + int(fraction) * _SCALE[len(fraction)]


class ChunkedBody:
    """HTTP/1.1 chunked transfer decoding over a buffered socket file: many chunks per read
    (the engine sends one chunk per log entry). Pure over its `read1`."""

    def __init__(self, read1: Any) -> None:
        self._read1 = read1
        self._buf = b""
        self._left = 0  # bytes of the current chunk still to come
        self._trailer = False  # the CRLF after a chunk's data is still to come
        self.done = False
        self.ended = False  # the last (empty) chunk came: the body ended, not broke off

    def read(self) -> bytes:
        """Some decoded body bytes (b"" only at the end)."""
        out: list[bytes] = []
        while not out and not self.done:
            more = self._read1(_READ)
            if not more:
                self.done = True
                break
            self._buf = self._buf + more if self._buf else more
            out = self._decode()
        return out[0] if len(out) == 1 else b"".join(out)

    def _decode(self) -> list[bytes]:
        # One pass over the buffer, no generator: the engine sends a chunk per log entry,
        # so this runs for every line read.
        buf = self._buf
        end = len(buf)
        find = buf.find
        out: list[bytes] = []
        append = out.append
        pos = 0
        left = self._left
        while True:
            if left:
                take = min(left, end - pos)
                if take <= 0:
                    break
                append(buf[pos : pos + take])
                pos += take
                left -= take
                if left:
                    break
                self._trailer = True
            if self._trailer:
                if end - pos < 2:
                    break
                pos += 2
                self._trailer = False
            line_end = find(b"\r\n", pos)
            if line_end < 0:
                break
            head = buf[pos:line_end]
            try:
                size = int(head, 16)
            except ValueError:  # chunk extensions (`;name=value`), or nothing
                size = int(head.split(b";", 1)[0] or b"0", 16)
            pos = line_end + 2
            if size == 0:
                self.done = self.ended = True
                break
            left = size
        self._left = left
        self._buf = buf[pos:] if pos < end else b""
        return out


class _Reading:
    """One logs request's frames, batch by batch; `close` from another thread ends it. With
    `idle`, an empty batch comes after each `idle` seconds without output."""

    def __init__(self, response: Any, tty: bool, idle: float | None) -> None:
        self._response = response
        self.idle = idle
        self._decoder = FrameDecoder(tty)
        self._closed = threading.Event()
        raw = response.raw
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        chunked = bool(getattr(getattr(raw, "_fp", None), "chunked", False))
        self._sock = _socket_of(fp)
        if self._sock is not None:
            self._sock.settimeout(None)  # a followed container may stay silent for hours
        self._body: ChunkedBody | None = None
        if chunked and fp is not None and hasattr(fp, "read1"):
            self._body = ChunkedBody(fp.read1)
            self._read = self._body.read
        else:
            self._read = lambda: raw.read1(_READ)
        self.complete = False

    def __iter__(self) -> Iterator[list[Frame]]:
        first = True  # bytes read with the headers may wait in the file's buffer: no select
        try:
            while not self._closed.is_set():
                if not first and self._quiet():
                    yield []
                    continue
                first = False
                try:
                    data = self._read()
                except (OSError, ValueError, AttributeError, requests.RequestException):
                    # A close from another thread, or the engine going away mid-body.
                    break
                if not data:
                    # The end of the body: as the engine ends it (its last chunk), or cut
                    # (the connection closed without it). Without chunking it cannot tell.
                    self.complete = self._body is None or self._body.ended
                    break
                frames = self._decoder.feed(data)
                if frames:
                    yield frames
            if not self._closed.is_set():
                rest = self._decoder.end()
                if rest:
                    yield rest
        finally:
            self.close()

    def _quiet(self) -> bool:
        """Whether `idle` seconds passed without anything to read. After the first read the
        socket file's buffer is empty (reads larger than it bypass it), so the socket says."""
        idle = self.idle
        if idle is None or self._sock is None:
            return False
        try:
            ready, _, _ = select.select([self._sock], [], [], idle)
        except (OSError, ValueError):
            return False  # closed meanwhile: the read says so
        return not ready

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._sock is not None:
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread
        with suppress(Exception):
            self._response.close()


def _socket_of(fp: Any) -> socket.socket | None:
    raw = getattr(fp, "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class DockerLogs:
    """`ContainerLogs` on a Docker Engine (DOCKER_HOST, or `base_url`); connects on first
    use, with a connection pool large enough to follow many containers at once."""

    def __init__(self, base_url: str | None = None) -> None:
        self._base_url = base_url
        self._client: Any = None
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    if self._base_url is None:
                        self._client = docker.from_env(max_pool_size=_POOL)
                    else:
                        self._client = docker.DockerClient(
                            base_url=self._base_url, max_pool_size=_POOL
                        )
                except docker.errors.DockerException as e:
                    raise EngineUnreachable(unreachable(e)) from e
            return self._client.api

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """`docker_errors.translated`, naming this adapter's engine when it was given one."""
        try:
            with translated(action):
                yield
        except EngineUnreachable as e:
            if self._base_url is None:
                raise
            raise EngineUnreachable(
                f"cannot reach the Docker Engine at {self._base_url} ({e.__cause__ or e})"
            ) from e

    def log_containers(self, project: str) -> list[LogContainer]:
        with self._translated(f"listing the containers of {project}"):
            found = self._api().containers(
                all=True, filters={"label": f"{LABEL_PROJECT}={project}"}
            )
        return [
            LogContainer(
                id=str(c["Id"]),
                labels=dict(c.get("Labels") or {}),
                running=c.get("State") == "running",
            )
            for c in found
        ]

    def container_run(self, container_id: str) -> ContainerRun | None:
        with self._translated(f"inspecting {container_id[:12]}"):
            try:
                attrs = self._api().inspect_container(container_id)
            except docker.errors.NotFound:
                return None
        state = attrs.get("State") or {}
        return ContainerRun(
            running=bool(state.get("Running")),
            tty=bool((attrs.get("Config") or {}).get("Tty")),
            started_at=str(state.get("StartedAt", "")),
            finished_at=str(state.get("FinishedAt", "")),
        )

    def read_logs(
        self, container_id: str, since: int, follow: bool, tty: bool, idle: float | None = None
    ) -> _Reading:
        api = self._api()
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": 1 if follow else 0,
            "tail": "all",
        }
        if since > 0:
            params["since"] = f"{since // 1_000_000_000}.{since % 1_000_000_000:09d}"
        with self._translated(f"reading the output of {container_id[:12]}"):
            # The SDK's own request helpers, so its transport (unix socket, TLS) is used.
            response = api._get(
                api._url("/containers/{0}/logs", container_id), params=params, stream=True
            )
            api._raise_for_status(response)
        return _Reading(response, tty, idle)
