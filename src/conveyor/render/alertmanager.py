"""Render Alertmanager's configuration. Pure: no I/O.

One route to one receiver, `conveyor`, whose webhooks are the server's Alertmanager receiver
(the notification channels) when one is configured; with none, alerts are kept and shown by
Alertmanager (and `conveyor alerts`) but sent nowhere. Grouped by alert, project and service, so
one failing service is one notification. `VALIDATOR` is `amtool check-config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from conveyor.render.validator import Validator

INSTALL_HINT = "apt-get install prometheus-alertmanager (Debian's package; it brings amtool)"

VALIDATOR = Validator(
    name="amtool",
    argv=("amtool", "check-config", "{file}"),
    message_pattern=r"FAILED: (?P<message>.*)$",
    install_hint=INSTALL_HINT,
)

RECEIVER = "conveyor"


@dataclass(frozen=True)
class AlertmanagerConfig:
    webhooks: tuple[str, ...] = ()  # URLs that take Alertmanager's webhook JSON
    group_by: tuple[str, ...] = ("alertname", "project", "service")
    group_wait: str = "5s"
    group_interval: str = "30s"
    repeat_interval: str = "4h"
    send_resolved: bool = True


def render(config: AlertmanagerConfig) -> str:
    receiver: dict[str, Any] = {"name": RECEIVER}
    if config.webhooks:
        receiver["webhook_configs"] = [
            {"url": url, "send_resolved": config.send_resolved} for url in config.webhooks
        ]
    doc = {
        "route": {
            "receiver": RECEIVER,
            "group_by": list(config.group_by),
            "group_wait": config.group_wait,
            "group_interval": config.group_interval,
            "repeat_interval": config.repeat_interval,
        },
        "receivers": [receiver],
    }
    header = "# Rendered by Conveyor (conveyor.render.alertmanager). The next change rewrites it.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
