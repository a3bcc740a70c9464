"""app.alerts: the receiver (token, payload, events once per start and end), the token file,
the agent's port, the rule files kept in a rules directory, and what `conveyor alerts`
lists."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from conveyor.app import alerts as app_alerts
from conveyor.app.alerts import AlertReceiver, alerts_view, token_file
from conveyor.errors import HookRejected, SettingError, ValidationFailed
from conveyor.model.alert_thresholds import AlertThresholds
from conveyor.model.alerts import Alert
from conveyor.model.events import Event, EventKind, Level, Subject
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.slo import ServiceSLO
from conveyor.model.stack import Service, Stack
from conveyor.observe.metrics.rules_files import sync_rule_files

TOKEN = "s3cret-token"


class Recorder:
    """Stands for Timeline.emit: what the receiver tells."""

    def __init__(self) -> None:
        self.events: list[tuple[EventKind, str, Level, dict[str, Any], str | None, str | None]] = []

    def __call__(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
        *,
        environment: str | None = None,
        service: str | None = None,
    ) -> None:
        self.events.append((kind, message, level, data or {}, environment, service))


def delivery(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {"version": "4", "status": "firing", "receiver": "conveyor", "alerts": list(alerts)}
    ).encode()


def alert(status: str = "firing", severity: str = "page", fp: str = "f1") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "ServiceDown",
            "severity": severity,
            "project": "shop-production",
            "environment": "production",
            "service": "web",
        },
        "annotations": {"summary": "web (production) is down", "description": "no replica"},
        "startsAt": "2026-12-06T10:00:00Z",
        "endsAt": "2026-12-06T10:03:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": fp,
    }


def test_a_delivery_with_the_token_becomes_events_once() -> None:
    told = Recorder()
    receiver = AlertReceiver(TOKEN, told)
    auth = f"Bearer {TOKEN}"

    first = receiver.receive(auth, delivery(alert()))
    receiver.receive(auth, delivery(alert()))  # Alertmanager repeating the group
    receiver.receive(auth, delivery(alert("resolved")))

    assert first.alerts == 1 and first.told == ["alert.firing ServiceDown"]
    assert [(k, m, lvl, env, svc) for k, m, lvl, _d, env, svc in told.events] == [
        ("alert.firing", "web (production) is down", "error", "production", "web"),
        ("alert.resolved", "web (production) is down", "info", "production", "web"),
    ]
    data = told.events[0][3]
    assert data["alertname"] == "ServiceDown" and data["severity"] == "page"
    assert data["project"] == "shop-production" and data["fingerprint"] == "f1"
    assert data["annotations"]["description"] == "no replica"
    assert told.events[1][3]["ends_at"] == 1796551380.0


def test_a_ticket_fires_as_a_warning() -> None:
    told = Recorder()
    AlertReceiver(TOKEN, told).receive(f"Bearer {TOKEN}", delivery(alert(severity="ticket")))
    assert told.events[0][2] == "warning"


@pytest.mark.parametrize("auth", [None, "", "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_without_the_token_nothing_is_told(auth: str | None) -> None:
    told = Recorder()
    with pytest.raises(HookRejected) as caught:
        AlertReceiver(TOKEN, told).receive(auth, delivery(alert()))
    assert caught.value.status == 401
    assert told.events == []


def test_what_is_not_a_delivery_is_400_and_too_big_is_413() -> None:
    receiver = AlertReceiver(TOKEN, Recorder())
    with pytest.raises(HookRejected) as bad:
        receiver.receive(f"Bearer {TOKEN}", b'{"version": "4"}')
    with pytest.raises(HookRejected) as big:
        receiver.receive(f"Bearer {TOKEN}", b" " * (app_alerts.MAX_BODY + 1))
    assert bad.value.status == 400 and "'alerts' is not a list" in bad.value.reason
    assert big.value.status == 413


def test_the_token_file_is_made_once_private_and_read_at_each_delivery(tmp_path: Path) -> None:
    path = token_file(tmp_path, {})
    assert path == tmp_path / "alerts" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token_file(tmp_path, {}) == path and len(path.read_text().strip()) >= 32

    receiver = AlertReceiver(path, Recorder())
    path.write_text("rotated\n")
    assert receiver.receive("Bearer rotated", delivery()).alerts == 0


def test_a_token_file_named_by_the_setting_must_exist_and_be_absolute(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.write_text("x\n")
    assert token_file(tmp_path, {app_alerts.TOKEN_SETTING: str(mine)}) == mine
    with pytest.raises(SettingError, match="absolute"):
        token_file(tmp_path, {app_alerts.TOKEN_SETTING: "mine"})
    with pytest.raises(SettingError, match="no such file"):
        token_file(tmp_path, {app_alerts.TOKEN_SETTING: str(tmp_path / "gone")})


def test_the_receivers_port_is_kept(tmp_path: Path) -> None:
    port = app_alerts.receiver_port(tmp_path, {})
    assert app_alerts.RECEIVER_RANGE[0] <= port <= app_alerts.RECEIVER_RANGE[1]
    assert app_alerts.receiver_port(tmp_path, {}) == port
    assert app_alerts.receiver_port(tmp_path, {app_alerts.PORT_SETTING: "19555"}) == 19555
    with pytest.raises(SettingError):
        app_alerts.receiver_port(tmp_path, {app_alerts.PORT_SETTING: "http"})
    app_alerts.forget_receiver_port(tmp_path)
    assert not (tmp_path / "alerts" / "receiver.json").exists()


def test_metrics_are_on_unless_turned_off_by_setting_or_by_up(tmp_path: Path) -> None:
    """What the agent's receiver (and the metrics stack) listens by."""
    from conveyor.app.metrics_switch import enabled, set_enabled
    from conveyor.deploy.project import ProjectPaths

    paths = ProjectPaths(tmp_path / "compose.yaml", "shop")
    assert enabled(paths, {})
    assert not enabled(paths, {"CONVEYOR_METRICS": "0"})
    assert not enabled(paths, {"CONVEYOR_METRICS": " Off "})
    set_enabled(paths, False)  # conveyor up --no-metrics
    assert (paths.state_dir / "metrics" / "off").exists()
    assert not enabled(paths, {})
    set_enabled(paths, True)
    assert enabled(paths, {})


def test_the_alertmanager_asked(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no Alertmanager known"):
        app_alerts.alertmanager_url(tmp_path, {}, None)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "ports.json").write_text(json.dumps({"alertmanager": 19123}))
    assert app_alerts.alertmanager_url(tmp_path, {}, None) == "http://127.0.0.1:19123"
    env = {"CONVEYOR_ALERTMANAGER_PORT": "19001"}
    assert app_alerts.alertmanager_url(tmp_path, env, None) == "http://127.0.0.1:19001"
    assert app_alerts.alertmanager_url(tmp_path, env, "http://h:1/") == "http://h:1"


def _resolved(ts: float, service: str, fp: str = "f") -> Event:
    labels = {"alertname": "ServiceDown", "service": service, "severity": "page"}
    return Event(
        kind="alert.resolved",
        message=f"{service} is down",
        subject=Subject(project="shop"),
        ts=ts,
        data={"alertname": "ServiceDown", "labels": labels, "starts_at": ts - 60, "ends_at": ts},
    )


def test_alerts_lists_firing_then_recently_resolved_each_once() -> None:
    firing = Alert(
        labels={"alertname": "ServiceDown", "service": "api", "severity": "page"},
        annotations={"summary": "api is down"},
        state="firing",
        starts_at=900.0,
    )
    events = [  # newest first, as EventLog.recent gives them
        _resolved(1000.0, "web"),
        _resolved(990.0, "web"),  # an earlier end of the same alert
        _resolved(980.0, "api"),  # fires again now: not resolved
        _resolved(100.0, "cart"),  # before the window
    ]

    view = alerts_view("http://am", [firing], events, since=500.0)

    assert [(a.name, a.service, a.state) for a in view.alerts] == [
        ("ServiceDown", "api", "firing"),
        ("ServiceDown", "web", "resolved"),
    ]
    web = view.alerts[1]
    assert (web.since, web.ended, web.summary, web.severity) == (
        940.0,
        1000.0,
        "web is down",
        "page",
    )


def _release(web: Service, db: Service) -> Release:
    return Release(
        number=3,
        project="shop",
        services={
            "web": ServiceRelease(service=web, image_id="sha256:1", image_ref="w"),
            "db": ServiceRelease(service=db, image_id="sha256:2", image_ref="d"),
        },
        stack=Stack(project="shop", file="/src/compose.yaml", services={"web": web, "db": db}),
    )


def test_slo_targets_come_from_the_serving_release() -> None:
    slo = ServiceSLO(availability=0.999)
    release = _release(Service(name="web", slo=slo), Service(name="db"))
    targets = app_alerts.slo_targets("shop", "production", release)
    assert [(t.project, t.environment, t.service, t.slo) for t in targets] == [
        ("shop", "production", "web", slo)
    ]
    assert app_alerts.slo_targets("shop", "production", None) == []


def test_alert_targets_come_from_the_serving_release_and_reach_the_rules(
    tmp_path: Path, promtool: str
) -> None:
    own = AlertThresholds(error_ratio=0.02)
    release = _release(Service(name="web", alerts=own), Service(name="db"))
    targets = app_alerts.alert_targets("shop", "production", release)
    assert [(t.service, t.thresholds) for t in targets] == [("web", own)]
    assert app_alerts.alert_targets("shop", "production", None) == []

    done = app_alerts.refresh_rules(tmp_path, [], None, promtool=promtool, own=targets)

    assert "conveyor-red.yml" in done.sync.written
    red = (tmp_path / "conveyor-red.yml").read_text()
    assert 'service:haproxy_http_error_ratio:rate5m{project="shop",environment="production",' in red


@pytest.fixture
def promtool() -> str:
    return shutil.which("promtool") or pytest.fail("promtool missing (scripts/install-host.sh)")


def test_rule_files_are_written_checked_and_kept_in_step(tmp_path: Path, promtool: str) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "mine.yml").write_text("groups: []\n")  # the user's: left alone
    (rules_dir / "conveyor-slo-gone.yml").write_text("groups: []\n")  # a project gone
    slo = ServiceSLO(availability=0.99)
    from conveyor.render.prometheus_rules import SLOTarget

    first = app_alerts.refresh_rules(
        rules_dir, [SLOTarget("shop", "shop", "web", slo)], None, promtool=promtool
    )
    again = app_alerts.refresh_rules(
        rules_dir, [SLOTarget("shop", "shop", "web", slo)], None, promtool=promtool
    )

    assert sorted(first.sync.written) == [
        "conveyor-backups.yml",
        "conveyor-host.yml",
        "conveyor-red.yml",
        "conveyor-slo-shop.yml",
    ]
    assert first.sync.removed == ["conveyor-slo-gone.yml"] and not first.reloaded
    assert not again.sync.changed
    assert sorted(os.listdir(rules_dir)) == [
        "conveyor-backups.yml",
        "conveyor-host.yml",
        "conveyor-red.yml",
        "conveyor-slo-shop.yml",
        "mine.yml",
    ]


def test_a_rejected_rule_file_never_replaces_the_one_in_use(tmp_path: Path, promtool: str) -> None:
    good = "groups:\n- name: g\n  rules:\n  - record: a:b:c\n    expr: up\n"
    sync_rule_files(tmp_path, {"conveyor-red.yml": good}, program=promtool)

    with pytest.raises(ValidationFailed, match=r"conveyor-red\.yml\.candidate"):
        sync_rule_files(
            tmp_path, {"conveyor-red.yml": good.replace("expr: up", "expr: up(")}, program=promtool
        )

    assert (tmp_path / "conveyor-red.yml").read_text() == good
    assert "up(" in (tmp_path / "conveyor-red.yml.rejected").read_text()


def test_the_agents_rules_pass_waits_for_a_metrics_stack(tmp_path: Path, promtool: str) -> None:
    from types import SimpleNamespace

    web = Service(name="web", slo=ServiceSLO(availability=0.99))
    release = Release(
        number=1,
        project="shop",
        services={"web": ServiceRelease(service=web, image_id="sha256:1", image_ref="w")},
        stack=Stack(project="shop", file="/src/compose.yaml", services={"web": web}),
    )
    engine = SimpleNamespace(
        paths=SimpleNamespace(state_dir=tmp_path),
        project="shop",
        timeline=SimpleNamespace(subject=Subject(project="shop", environment="production")),
        store=SimpleNamespace(current_release=lambda: release),
    )
    controller = app_alerts.AlertRulesController(engine, promtool)  # type: ignore[arg-type]

    assert controller.tick() is None  # no metrics stack configured: nothing written
    prometheus = tmp_path / "metrics" / "prometheus"
    prometheus.mkdir(parents=True)
    (prometheus / "prometheus.yml").write_text("global: {}\n")
    done = controller.tick()

    assert done is not None and "conveyor-slo-shop.yml" in done.sync.written
    assert not done.reloaded  # no ports.json: no Prometheus to tell
    text = (prometheus / "rules" / "conveyor-slo-shop.yml").read_text()
    assert 'environment="production",service="web"' in text


def test_an_slo_change_alone_serves_a_new_release_without_restarting_a_replica(
    tmp_path: Path,
) -> None:
    """What the rules pass reads: the serving release's SLOs, moved by a deploy that changes
    only them (objectives are not in a replica's spec hash)."""
    from tests.unit.gitops.engine_world import World, release

    world = World(tmp_path)
    assert world.deploy("1").status == "succeeded"
    before = set(world.runtime.containers)
    first = world.store.current_release()
    assert first is not None

    target = release("1")
    web = target.services["web"]
    slo = ServiceSLO(availability=0.995)
    changed = web.model_copy(update={"service": web.service.model_copy(update={"slo": slo})})
    target = target.model_copy(
        update={
            "services": {"web": changed},
            "stack": target.stack.model_copy(update={"services": {"web": changed.service}}),
        }
    )
    outcome = world.engine.apply(target, "deploy")

    now = world.store.current_release()
    assert outcome.status == "succeeded"
    assert now is not None and now.number == first.number + 1
    assert app_alerts.slo_targets("shop", "staging", now)[0].slo == slo
    assert set(world.runtime.containers) == before  # no replica replaced
