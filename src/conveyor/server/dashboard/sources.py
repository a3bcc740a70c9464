"""Where the observing pages (services, alerts) ask what the backend does not hold: the
server's Prometheus and Alertmanager. `install_dashboard(app, ObserveSources.of_server(...))`
in `conveyor server`; the default (`ObserveSources()`) knows none, and the pages say that
metrics and silences are not available."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

from conveyor.app.alerts_page import Silence, server_silences
from conveyor.app.service_charts import server_prometheus_url


def _none() -> str | None:
    return None


@dataclass(frozen=True)
class ObserveSources:
    prometheus: Callable[[], str | None] = _none  # its URL now; None: metrics are off
    silences: Callable[[], list[Silence]] | None = None  # None: no Alertmanager to ask

    @classmethod
    def of_server(cls, data_dir: Path, environ: Mapping[str, str]) -> ObserveSources:
        """The server's one metrics stack under `data_dir` (docs/metrics.md)."""
        return cls(
            prometheus=lambda: server_prometheus_url(data_dir),
            silences=lambda: server_silences(data_dir, environ),
        )


def install_sources(app: FastAPI, sources: ObserveSources) -> None:
    app.state.dashboard_sources = sources


def sources_of(request: Request) -> ObserveSources:
    found = getattr(request.app.state, "dashboard_sources", None)
    return found if isinstance(found, ObserveSources) else ObserveSources()
