"""render.alertmanager_routes: the receiver with its bearer token file, the routes and the
inhibitions; `amtool check-config` accepts the file made of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conveyor.host.validate import check
from conveyor.render import alertmanager_routes as am

HOOK = am.ConveyorHook("http://127.0.0.1:19120/hooks/alertmanager", "/state/alerts/token")


def test_the_conveyor_receiver_authenticates_with_the_token_file() -> None:
    (receiver,) = am.receivers(HOOK, ["https://chat.example/hook"])

    assert receiver["name"] == am.RECEIVER
    ours, plain = receiver["webhook_configs"]
    assert ours["url"].endswith(am.HOOK_PATH)
    assert ours["http_config"] == {
        "authorization": {"type": "Bearer", "credentials_file": "/state/alerts/token"}
    }
    assert ours["send_resolved"] is True and ours["max_alerts"] == 0
    assert plain == {"url": "https://chat.example/hook", "send_resolved": True}


def test_without_a_hook_or_webhooks_alerts_stay_in_alertmanager() -> None:
    assert am.receivers(None) == [{"name": "conveyor"}]
    doc = yaml.safe_load(am.render(None))
    assert doc["route"]["receiver"] == "conveyor"
    assert doc["receivers"] == [{"name": "conveyor"}]


def test_pages_repeat_sooner_and_a_down_service_silences_its_symptoms() -> None:
    route = am.route(am.Timing(repeat_interval="6h", page_repeat_interval="30m"))
    assert route["group_by"] == ["alertname", "project", "environment", "service"]
    assert route["repeat_interval"] == "6h"
    assert route["routes"] == [
        {"matchers": ['severity="page"'], "receiver": "conveyor", "repeat_interval": "30m"}
    ]
    down = am.inhibit_rules()[0]
    assert down["source_matchers"] == ['alertname="ServiceDown"']
    assert down["equal"] == ["project", "environment", "service"]


@pytest.mark.parametrize("webhooks", [(), ("http://127.0.0.1:9/x",)])
@pytest.mark.parametrize("hook", [HOOK, None])
def test_amtool_accepts_the_rendered_file(
    tmp_path: Path, hook: am.ConveyorHook | None, webhooks: tuple[str, ...]
) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool missing: scripts/install-host.sh installs prometheus-alertmanager")
    path = tmp_path / "alertmanager.yml"
    text = am.render(hook, webhooks)
    path.write_text(text)

    verdict = check(am.VALIDATOR, path, program=amtool)

    assert verdict.ok, verdict.output
    assert yaml.safe_load(text)["receivers"] == am.receivers(hook, webhooks)


def test_amtool_refuses_a_route_to_no_receiver(tmp_path: Path) -> None:
    amtool = shutil.which("amtool") or pytest.fail("amtool missing")
    path = tmp_path / "alertmanager.yml"
    path.write_text(am.render(HOOK).replace("receiver: conveyor", "receiver: nobody", 1))

    verdict = check(am.VALIDATOR, path, program=amtool)

    assert not verdict.ok
    assert any("nobody" in m for m in verdict.messages), verdict.output
