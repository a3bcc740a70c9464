"""The dashboard's navigation: the pages built so far, in the header's order. A new page
(pipelines, services, logs, alerts, delivery) adds its `NavItem` here once it exists: pages
that are not built are not listed, rather than shown empty."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    key: str  # the `active` a page passes to mark itself current
    label: str
    href: str


NAV: list[NavItem] = [
    NavItem("overview", "Overview", "/"),
    NavItem("services", "Services", "/services"),
    NavItem("logs", "Logs", "/logs"),
    NavItem("alerts", "Alerts", "/alerts"),
    NavItem("delivery", "Delivery", "/delivery"),
]
# Planned, not built yet (issue 11): Pipelines.
