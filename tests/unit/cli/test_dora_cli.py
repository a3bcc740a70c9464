"""`conveyor dora`: the table, the --json form and a window that cannot be read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

from conveyor.app.dora import DoraView
from conveyor.cli.dora import dora_table, duration
from conveyor.cli.main import main
from conveyor.model.dora import RolloutRecord as R
from conveyor.model.dora import dora

NOW = 1_700_000_000.0


def rendered(view: DoraView) -> str:
    console = Console(width=200, record=True, file=None)
    with console.capture() as cap:
        console.print(dora_table(view))
    return cap.get()


def test_durations_read_in_two_units_at_most() -> None:
    assert [duration(s) for s in (None, 0, 45, 60, 725, 3600, 12_000, 190_000)] == [
        "-", "0s", "45s", "1m", "12m 5s", "1h", "3h 20m", "2d 4h",
    ]  # fmt: skip


def test_the_table_says_each_metric_and_where_it_comes_from() -> None:
    records = [
        R(id=1, kind="up", status="succeeded", started_at=NOW - 7200, finished_at=NOW - 7000,
          to_release=1, commit_time=NOW - 7300, commit_time_source="git"),
        R(id=2, kind="deploy", status="failed", started_at=NOW - 3600, finished_at=NOW - 3500,
          from_release=1, to_release=2),
        R(id=3, kind="deploy", status="running", started_at=NOW - 10, from_release=1,
          to_release=3),
    ]  # fmt: skip
    view = DoraView(
        project="shop", environment="[b]staging", since="7d", metrics=dora(records, NOW, 7 * 86400)
    )
    out = rendered(view)
    assert "DORA metrics — [b]staging (last 7d, 7 days)" in out  # names are text, not markup
    assert "0.14 per day (1.0 per week)" in out
    assert "median 5m, p90 5m" in out
    assert "commit → serving; commit times: 1 from git" in out
    assert "50%" in out and "1 of 2 deployments failed" in out
    assert "no failure restored" in out and "0 restored, 1 not yet" in out
    assert "1 deployment(s) still running or interrupted: not counted" in out


def test_json_and_a_bad_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "compose.yaml").write_text("name: shop\nservices:\n  web:\n    image: web\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["conveyor", "dora", "--json"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert (out["version"], out["project"], out["since"]) == (1, "shop", "30d")
    assert out["metrics"]["deployments"] == 0 and out["metrics"]["change_failure_rate"] is None
    monkeypatch.setattr(sys, "argv", ["conveyor", "dora", "--since", "soon"])
    with pytest.raises(SystemExit) as bad:
        main()
    assert bad.value.code == 2
    assert "invalid duration 'soon'" in capsys.readouterr().err
