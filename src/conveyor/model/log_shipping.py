"""Log shipping: where Conveyor sends a copy of every stored log line (the `logs:` section of
conveyor.yaml, or the file `CONVEYOR_LOGS_CONFIG` names for `conveyor up`; docs/logs-shipping.md).

    logs:
      ship:
        - elasticsearch: {url: https://es.example.com:9200, index: "conveyor-%Y.%m.%d",
                          username: conveyor, password_env: ES_PASSWORD}
        - loki: {url: https://loki.example.com, labels: [project, environment, service, stream],
                 tenant: team-a}

Each destination has its own on-disk buffer (named after `name`), so one that is down never
holds back another. Secrets are never in the file: it names the environment variables that
hold them (`password_env`, `api_key_env`).
"""

from __future__ import annotations

from typing import Literal, get_args

from conveyor.model.frozen import Frozen

# The labels a Loki stream may carry: few values each. A replica, a container, a release or a
# CI job would make a stream per container or per deploy, which Loki's index is not built for;
# those go into the line (docs/logs-shipping.md).
LokiLabel = Literal["project", "environment", "service", "stream", "level"]
LOKI_LABELS: tuple[LokiLabel, ...] = get_args(LokiLabel)
DEFAULT_LOKI_LABELS: tuple[LokiLabel, ...] = ("project", "environment", "service", "stream")

DEFAULT_INDEX = "conveyor-%Y.%m.%d"  # strftime of the record's time (UTC): an index per day
DEFAULT_BUFFER = 256 * 1024 * 1024  # bytes on disk per destination before the oldest is dropped
DEFAULT_TIMEOUT = 30.0  # seconds per request


class ElasticsearchDestination(Frozen):
    """Elasticsearch or OpenSearch, through the `_bulk` API."""

    kind: Literal["elasticsearch"] = "elasticsearch"
    name: str  # names the buffer directory and the events; default `elasticsearch`
    url: str  # the cluster's base URL (`/_bulk` is added)
    index: str = DEFAULT_INDEX
    username: str | None = None  # HTTP basic authentication, with password_env
    password_env: str | None = None
    api_key_env: str | None = None  # holds the API key in its encoded form (`ApiKey <value>`)
    timeout: float = DEFAULT_TIMEOUT
    buffer: int = DEFAULT_BUFFER


class LokiDestination(Frozen):
    """Grafana Loki, through the push API (`/loki/api/v1/push`, JSON)."""

    kind: Literal["loki"] = "loki"
    name: str  # default `loki`
    url: str  # the base URL (`/loki/api/v1/push` is added)
    labels: tuple[LokiLabel, ...] = DEFAULT_LOKI_LABELS
    tenant: str | None = None  # sent as X-Scope-OrgID
    username: str | None = None  # HTTP basic authentication, with password_env
    password_env: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    buffer: int = DEFAULT_BUFFER


Destination = ElasticsearchDestination | LokiDestination


class LogShipping(Frozen):
    ship: tuple[Destination, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.ship
