"""Alerts as Alertmanager knows them: what `conveyor alerts` lists and what its webhook
deliveries carry (docs/alerts.md). Pure data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.frozen import Frozen

# firing: active in Alertmanager (or sent as firing); suppressed: firing but silenced or
# inhibited; resolved: over.
AlertState = Literal["firing", "suppressed", "resolved"]


class Alert(Frozen):
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    state: AlertState
    starts_at: float  # UNIX seconds
    ends_at: float | None = None  # when it resolved (None while it fires)
    fingerprint: str = ""  # Alertmanager's id of the label set
    generator_url: str | None = None  # the Prometheus expression page that fired it
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str | None:
        return self.labels.get("severity")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.name

    def label(self, key: str) -> str | None:
        return self.labels.get(key) or None


class AlertView(Frozen):
    """One line of `conveyor alerts`: an alert firing now (from Alertmanager's API) or one that
    resolved recently (from the events its webhook delivery left)."""

    name: str
    state: AlertState
    severity: str | None = None
    project: str | None = None
    environment: str | None = None
    service: str | None = None
    summary: str
    since: float  # UNIX seconds: started firing
    ended: float | None = None  # resolved at
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class AlertsView(Frozen):
    version: int = 1  # of this JSON form (docs/cli.md)
    alertmanager: str  # the URL asked
    alerts: list[AlertView]
    resolved_since: float | None = None  # resolved alerts are listed from this time on
