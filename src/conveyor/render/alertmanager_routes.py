"""The receiver side of Alertmanager's configuration: the `conveyor` receiver (Conveyor's own
webhook, `POST /hooks/alertmanager` on the server or the agent's loopback listener, with a
bearer token Alertmanager reads from a file), the routes by severity and the inhibitions
between Conveyor's alerts. Pure: no I/O.

`route()`, `receivers()` and `inhibit_rules()` are the parts of alertmanager.yml under its
`route:`, `receivers:` and `inhibit_rules:` keys; `render()` is the whole file made of them,
which the metrics stack runs with (app.metrics). docs/alerts.md, "Receiver".

`VALIDATOR` is `amtool check-config`.
"""

from __future__ import annotations

from collections.abc import Sequence
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
HOOK_PATH = "/hooks/alertmanager"
# One notification per alert and where it happens (not per alert name across a project).
GROUP_BY = ("alertname", "project", "environment", "service")


@dataclass(frozen=True)
class ConveyorHook:
    """Where Alertmanager delivers to Conveyor, and the file holding the bearer token the
    receiving end checks (Alertmanager reads it at each delivery: a new token needs no
    reload)."""

    url: str  # http://127.0.0.1:PORT/hooks/alertmanager
    credentials_file: str  # absolute path, mode 0600


@dataclass(frozen=True)
class Timing:
    """Alertmanager's grouping delays: how soon a first alert is sent (group_wait), how soon
    the next change of a group is (group_interval), how often a still-firing group is told
    again (repeat_interval; pages sooner)."""

    group_wait: str = "5s"
    # A group is one alert of one service (GROUP_BY): its next start or end waits for this
    # tick, so it is short (a service down again is told within about 30 s).
    group_interval: str = "10s"
    repeat_interval: str = "4h"
    page_repeat_interval: str = "1h"


def webhook_config(hook: ConveyorHook, send_resolved: bool = True) -> dict[str, Any]:
    return {
        "url": hook.url,
        "send_resolved": send_resolved,
        "http_config": {
            "authorization": {"type": "Bearer", "credentials_file": hook.credentials_file}
        },
        "max_alerts": 0,  # every alert of a group: each becomes an event
    }


def receivers(hook: ConveyorHook | None, webhooks: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The one receiver, `conveyor`: Conveyor's hook (when it runs one) and any further plain
    webhook URLs (CONVEYOR_ALERT_WEBHOOKS). With neither, alerts stay in Alertmanager, where
    `conveyor alerts` reads them."""
    configs: list[dict[str, Any]] = []
    if hook is not None:
        configs.append(webhook_config(hook))
    configs += [{"url": url, "send_resolved": True} for url in webhooks]
    receiver: dict[str, Any] = {"name": RECEIVER}
    if configs:
        receiver["webhook_configs"] = configs
    return [receiver]


def route(timing: Timing = Timing()) -> dict[str, Any]:
    """Everything to `conveyor`, grouped per alert and service; pages repeat sooner."""
    return {
        "receiver": RECEIVER,
        "group_by": list(GROUP_BY),
        "group_wait": timing.group_wait,
        "group_interval": timing.group_interval,
        "repeat_interval": timing.repeat_interval,
        "routes": [
            {
                "matchers": ['severity="page"'],
                "receiver": RECEIVER,
                "repeat_interval": timing.page_repeat_interval,
            }
        ],
    }


def inhibit_rules() -> list[dict[str, Any]]:
    """What a louder alert makes redundant: a service that is down also answers 503s and
    burns its budget; a disk about to fill is also filling."""
    same_service = ["project", "environment", "service"]
    return [
        {
            "source_matchers": ['alertname="ServiceDown"'],
            "target_matchers": [
                'alertname=~"ServiceErrorRatioHigh|ServiceLatencyHigh|ErrorBudgetBurn"'
            ],
            "equal": same_service,
        },
        {
            "source_matchers": ['alertname=~"HostDiskFillingUpSoon|HostDiskAlmostFull"'],
            "target_matchers": ['alertname="HostDiskFillingUp"'],
            "equal": ["instance", "mountpoint"],
        },
    ]


def render(
    hook: ConveyorHook | None, webhooks: Sequence[str] = (), timing: Timing = Timing()
) -> str:
    """A whole alertmanager.yml of the parts above."""
    doc = {
        "route": route(timing),
        "receivers": receivers(hook, webhooks),
        "inhibit_rules": inhibit_rules(),
    }
    header = (
        "# Rendered by Conveyor (conveyor.render.alertmanager_routes). "
        "The next change rewrites it.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=10_000)
