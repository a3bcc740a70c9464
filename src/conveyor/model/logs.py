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


class LogRecord(Frozen):
    """A parsed line (a multi-line traceback joined into one record)."""

    ts: float  # UNIX seconds, from the Docker Engine's timestamp of the (first) line
    labels: LogLabels
    message: str  # the text (for structured lines: their message field)
    level: LogLevel | None = None
    fields: dict[str, str] = Field(default_factory=dict)  # other keys of a JSON/logfmt line
    id: int = 0  # assigned by the store
