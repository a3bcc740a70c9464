"""`conveyor provision`'s output: progress lines per host and task, the recap table, and a bad
fleet refused before Ansible starts (file:line: field)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.cli.output import console, err
from conveyor.cli.provision import _Progress, _recap
from conveyor.errors import SpecErrors
from conveyor.model.provision import HostRecap, ProvisionEvent, ProvisionResult


def test_progress_shows_changes_with_diffs_failures_and_unreachable_hosts() -> None:
    show = _Progress(None, diff=True)
    with err.capture() as captured:
        show(ProvisionEvent(kind="task.ok", host="h1", task="quiet", role="base"))
        show(
            ProvisionEvent(
                kind="task.changed",
                host="h1",
                task="Configure dockerd",
                role="docker",
                diff="-a\n+b",
            )
        )
        show(
            ProvisionEvent(
                kind="task.failed",
                host="h2",
                task="Install [x]",
                role="nrpe",
                message="No package matching",
            )
        )
        show(
            ProvisionEvent(
                kind="host.unreachable", host="h3", task="Gathering Facts", message="timed out"
            )
        )
    lines = captured.get().splitlines()
    assert lines == [
        "  ~ h1: docker : Configure dockerd",
        "-a",
        "+b",
        "  ✗ h2: nrpe : Install [x]: No package matching",
        "  ✗ h3: unreachable at Gathering Facts: timed out",
    ]


def test_recap_names_the_failed_task() -> None:
    result = ProvisionResult(
        hosts=(
            HostRecap(host="h1", ok=40, changed=3),
            HostRecap(host="h2", ok=9, failed=1, failed_task="Install HAProxy", message="apt"),
        ),
        seconds=12.0,
    )
    with console.capture() as captured:
        console.print(_recap(result))
    text = captured.get()
    assert "Install HAProxy: apt" in text and "h1" in text and not result.succeeded


def test_a_bad_fleet_is_refused_naming_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conveyor.yaml").write_text("hosts:\n  web1: {adress: 10.0.0.5}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecErrors) as info:
        CliRunner().invoke(app, ["provision"], catch_exceptions=False)
    assert str(info.value).splitlines() == [
        "conveyor.yaml:2: hosts.web1: 'address' is required: the IP address or DNS name SSH "
        "connects to",
        "conveyor.yaml:2: hosts.web1.adress: unknown key (known: address, user, port, key, "
        "roles, labels) (did you mean 'address'?)",
    ]
