"""The logs page's search form (pure): the filters of `conveyor logs` as a GET form's fields,
turned into a `LogQuery` through the same checks (app.logs.log_query), and back into a query
string for the live tail's stream and for links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from conveyor.app.logs import log_query
from conveyor.errors import LogQueryError
from conveyor.model.logs import LogQuery

LEVELS = ("", "debug", "info", "warning", "error", "critical")
PAGE_LINES = 200  # lines a search shows (newest first)
FIELDS = ("service", "text", "level", "since", "until", "release", "field", "host")


@dataclass(frozen=True)
class LogForm:
    """What the form holds, as typed. `service` and `host` (fleet hosts): names separated by
    commas or spaces; `field`: `KEY=VALUE` pairs separated by spaces."""

    service: str = ""
    text: str = ""
    level: str = ""
    since: str = ""
    until: str = ""
    release: str = ""
    field: str = ""
    host: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str]) -> LogForm:
        return cls(**{k: params.get(k, "").strip() for k in FIELDS})

    @property
    def services(self) -> list[str]:
        return [s for s in self.service.replace(",", " ").split() if s]

    @property
    def hosts(self) -> list[str]:
        return [h for h in self.host.replace(",", " ").split() if h]

    @property
    def fields(self) -> list[str]:
        return self.field.split()

    @property
    def empty(self) -> bool:
        return not any(getattr(self, k) for k in FIELDS)

    def query(self, limit: int = PAGE_LINES, now: float | None = None) -> LogQuery:
        """The LogQuery, or LogQueryError naming the form's field at fault."""
        release: int | None = None
        if self.release:
            if not self.release.lstrip("#").isdigit():
                raise LogQueryError("release", f"a release number, got {self.release!r}")
            release = int(self.release.lstrip("#"))
        return log_query(
            self.services,
            grep=self.text or None,
            level=self.level or None,
            since=self.since or None,
            until=self.until or None,
            release=release,
            fields=self.fields,
            limit=limit,
            now=now,
            hosts=self.hosts,
        )

    def query_string(self) -> str:
        """The non-empty fields, urlencoded (`service=web&text=GET`)."""
        return urlencode([(k, getattr(self, k)) for k in FIELDS if getattr(self, k)])
