"""The deploy commands' tables and progress lines print names, URLs and errors as text, never
as Rich markup: `[/x]` raises nothing and `[bold]` stays on screen."""

from __future__ import annotations

import sys

import pytest
from rich.console import Console
from rich.table import Table

from conveyor.app.views import (
    AgentView,
    HistoryView,
    ReplicaView,
    RolloutView,
    RouterView,
    ServiceView,
    StatusView,
)
from conveyor.cli.main import main
from conveyor.cli.progress import ProgressRenderer
from conveyor.cli.report import history_table, status_table
from conveyor.model.events import Event, Subject

NASTY = "[/x] [bold]b[/bold] [x, y]"


def rendered(table: Table) -> str:
    console = Console(width=400, record=True, file=None)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


def test_status_table_prints_names_and_urls_as_text() -> None:
    replica = ReplicaView(
        name=f"web-1 {NASTY}",
        release=3,
        port=8001,
        running=True,
        exit_code=None,
        health="healthy",
        router="ready",
        current=True,
        container="c1",
        uptime=1.0,
    )
    view = StatusView(
        project=f"shop {NASTY}",
        release=3,
        commit=None,
        router=RouterView(running=True, stats_url=None),
        agent=AgentView(running=False, pid=None),
        services=[
            ServiceView(
                name=f"web {NASTY}",
                desired_replicas=1,
                running_replicas=1,
                image="web",
                spec_hash=None,
                url=f"http://[::1]:8080/{NASTY}",
                replicas=[replica],
            )
        ],
    )
    text = rendered(status_table(view))
    assert f"shop {NASTY} — release 3" in text
    assert f"web {NASTY} (1/1)" in text
    assert f"web-1 {NASTY}" in text
    assert f"http://[::1]:8080/{NASTY}" in text


def test_history_table_prints_errors_as_text() -> None:
    rollout = RolloutView(
        id=1,
        kind="deploy",
        from_release=1,
        to_release=2,
        status="rolled_back",
        started_at=0.0,
        finished_at=1.0,
        duration=1.0,
        actor="cli",
        reason="",
        error=f"probe failed: {NASTY}",
    )
    text = rendered(history_table(HistoryView(rollouts=[rollout], releases=[])))
    assert f"probe failed: {NASTY}" in text


def test_progress_lines_print_messages_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    show = ProgressRenderer(status=None)
    subject = Subject(project="shop", service=f"web {NASTY}")
    for kind, message, data in (
        ("step.done", f"start {NASTY}", {"seconds": 1.0}),
        ("step.failed", f"start {NASTY}", {"error": f"exited: {NASTY}"}),
        ("image.output", f"Step 1/2 : RUN echo {NASTY}", {}),
        ("rollout.note", f"note {NASTY}", {}),
        ("rollout.message", f"rolling back {NASTY}", {}),
    ):
        show(Event(kind=kind, message=message, subject=subject, actor="cli", data=data))
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"  ✓ start {NASTY} 1.0s",
        f"  ✗ start {NASTY}: failed: exited: {NASTY}",
        f"web {NASTY}: Step 1/2 : RUN echo {NASTY}",
        f"note: note {NASTY}",
        f"rolling back {NASTY}",
    ]


def test_bootstrap_reports_a_failure_as_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conveyor.app import bootstrap

    def run_bootstrap(check_only: bool, report: object) -> bool:
        assert callable(report)
        report("image [x]", f"failed: docker import: {NASTY}")
        return False

    monkeypatch.setattr(bootstrap, "run_bootstrap", run_bootstrap)
    monkeypatch.setattr(sys, "argv", ["conveyor", "bootstrap", "--check"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "image [x]" in err and f"failed: docker import: {NASTY}" in err


def test_status_table_says_a_service_is_global() -> None:
    replicas = [
        ReplicaView(
            name=f"web-1-{i}",
            release=1,
            port=32768,
            address=f"10.0.0.{i}",
            running=True,
            exit_code=None,
            health="healthy",
            router="ready",
            current=True,
            container=f"c{i}",
            uptime=1.0,
            host=f"h{i}",
        )
        for i in (1, 2)
    ]
    view = StatusView(
        project="shop",
        release=1,
        commit=None,
        router=RouterView(running=True, stats_url=None),
        agent=AgentView(running=False, pid=None),
        services=[
            ServiceView(
                name="web",
                mode="global",
                desired_replicas=3,
                running_replicas=2,
                image="web",
                spec_hash=None,
                url=None,
                replicas=replicas,
            )
        ],
    )
    text = rendered(status_table(view))
    assert "web (2/3 global)" in text
    assert "10.0.0.2:32768" in text
