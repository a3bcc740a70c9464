"""One line a replica (or a one-shot or CI job container) wrote, as Conveyor keeps it: the
collector (observe.logs) parses and labels it, the embedded store keeps it, `conveyor logs`
and the API search it, the shippers send it to Elasticsearch/OpenSearch or Loki."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.frozen import Frozen

Stream = Literal["stdout", "stderr"]
# Parsed from the line when it says (JSON `level`/`severity`, logfmt `level=`), else None.
LogLevel = Literal["trace", "debug", "info", "warning", "error", "critical"]
# Least to most severe: `--level warning` means warning and above.
LEVELS: tuple[LogLevel, ...] = ("trace", "debug", "info", "warning", "error", "critical")


class LogLabels(Frozen):
    """Where a line comes from: enough to find it again after its replica is gone."""

    project: str
    environment: str | None = None
    service: str | None = None  # None for a container outside a service (a CI job: see job)
    replica: str | None = None  # the replica's name (`web-3-1`)
    release: int | None = None
    container: str  # the Docker container id
    stream: Stream = "stdout"
    job: int | None = None  # a CI job's id, for job containers
    # The fleet host whose engine ran the container (docs/fleet.md); None on one host.
    host: str | None = None


class LogRecord(Frozen):
    """A parsed line (a multi-line traceback joined into one record)."""

    ts: float  # UNIX seconds, from the Docker Engine's timestamp of the (first) line
    labels: LogLabels
    message: str  # the text (for structured lines: their message field)
    level: LogLevel | None = None
    fields: dict[str, str] = Field(default_factory=dict)  # other keys of a JSON/logfmt line
    id: int = 0  # assigned by the store

    def whole_line(self) -> bool:
        """Whether the message is the structured line itself (JSON or logfmt without a message
        key keeps it whole, observe.logs.parse), so showing its fields after it says it twice."""
        if not self.fields:
            return False
        text = self.message.lstrip()
        return text.startswith("{") or all(f"{k}=" in text for k in self.fields)


class LogQuery(Frozen):
    """What `conveyor logs` and the API ask the store: every given filter must hold."""

    services: tuple[str, ...] = ()  # any of these (empty: every service, jobs included)
    replicas: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()  # fleet hosts (any of them)
    release: int | None = None
    level: LogLevel | None = None  # this level and above; lines without a level are left out
    streams: tuple[Stream, ...] = ()
    text: str = ""  # words (full-text, `word*` for a prefix), all of them, in message or fields
    fields: dict[str, str] = Field(default_factory=dict)  # exact values of parsed fields
    since: float | None = None  # UNIX seconds, inclusive
    until: float | None = None  # UNIX seconds, inclusive
    limit: int = 100  # newest first


class LogSettings(Frozen):
    """The project's `x-conveyor.logs` (top of compose.yaml): whether its agent or server
    collects its containers' output into the log store, and how long it is kept (None: the
    store's defaults, 7 days and 1 GiB; docs/logs.md)."""

    collect: bool = True
    max_age: float | None = None  # seconds
    max_bytes: int | None = None
