"""Typed results of the checks use cases (`app.checks`); their `model_dump()` is the `--json`
form of `conveyor checks` (docs/checks.md)."""

from __future__ import annotations

from pydantic import BaseModel

from conveyor.app.views import JSON_VERSION, ChecksHealthView
from conveyor.model.checks import CheckStatus, Downtime


class ChecksView(BaseModel):
    version: int = JSON_VERSION
    project: str
    nagios: ChecksHealthView
    checks: list[CheckStatus] = []  # hosts (check null) first, then checks by host and name
    downtimes: list[Downtime] = []


class DowntimeResult(BaseModel):
    project: str
    host: str
    checks: list[str]  # the checks put in downtime ([] with host: the host itself)
    start: float
    end: float
    confirmed: bool  # Nagios's status file lists the downtimes
