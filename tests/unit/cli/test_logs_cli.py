"""`conveyor logs` over a project's log store: the lines, the filters, --json, bad filters."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.model.logs import LogLabels
from conveyor.observe.logs.store import LogStore


def run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["conveyor", "logs", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text("name: shop\nservices:\n  web:\n    image: web\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fill(project: Path) -> None:
    store = LogStore.open(project / ".conveyor" / "shop" / "logs.db")
    now = int(time.time() * 1e9)
    web = store.source(LogLabels(project="shop", service="web", replica="web-1-1", release=1,
                                 container="c1"))  # fmt: skip
    db = store.source(LogLabels(project="shop", service="db", replica="db-1-1", release=1,
                                container="c2", stream="stderr"))  # fmt: skip
    store.write(
        [
            (web, now - 120 * 10**9, 2, "served", '{"path":"/cart"}'),
            (db, now - 60 * 10**9, 4, "db [timeout]", None),  # brackets: not markup
            (web, now - 1 * 10**9, None, "plain words", None),
        ]
    )
    store.close()


def test_lines_in_time_order_with_replica_and_level(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(project)
    assert run(monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "web-1-1 info     served path=/cart",
        "db-1-1 error    db [timeout]",
        "web-1-1 plain words",
    ]


def test_filters_and_json(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(project)
    assert run(monkeypatch, "web", "--json") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["message"] for r in records] == ["served", "plain words"]
    assert records[0]["labels"]["replica"] == "web-1-1"
    assert records[0]["fields"] == {"path": "/cart"}
    assert run(monkeypatch, "--level", "warn", "--json") == 0
    assert [json.loads(x)["message"] for x in capsys.readouterr().out.splitlines()] == [
        "db [timeout]"
    ]
    assert run(monkeypatch, "--since", "90s", "--grep", "timeout", "--json") == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert run(monkeypatch, "--field", "path=/cart", "--tail", "5", "--json") == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert run(monkeypatch, "--grep", "absent") == 0
    assert "no matching lines" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--since", "yesterdayish"], "--since"),
        (["--field", "novalue"], "--field"),
        (["--level", "loud"], "--level"),
        (["--tail", "0"], "--tail"),
    ],
)
def test_a_bad_filter_is_exit_2_naming_it(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    option: str,
) -> None:
    fill(project)
    assert run(monkeypatch, *args) == 2
    assert option in capsys.readouterr().err


def test_without_a_store_filters_say_what_is_missing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, "web", "--grep", "x") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no log store for shop yet" in err
    assert not (project / ".conveyor" / "shop" / "logs.db").exists()


def test_a_structured_line_without_a_message_is_printed_once(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LogStore.open(project / ".conveyor" / "shop" / "logs.db")
    web = store.source(LogLabels(project="shop", service="web", replica="web-1-1", container="c"))
    now = int(time.time() * 1e9)
    store.write(
        [
            (web, now - 2 * 10**9, 2, '{"path": "/cart", "status": 200}',
             '{"path":"/cart","status":"200"}'),
            (web, now - 1 * 10**9, None, "path=/cart status=500",
             '{"path":"/cart","status":"500"}'),
        ]
    )  # fmt: skip
    store.close()
    assert run(monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "web-1-1 info     path=/cart status=200",
        "web-1-1 path=/cart status=500",
    ]


def test_on_a_fleet_each_replica_is_named_with_its_host_and_host_filters(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LogStore.open(project / ".conveyor" / "shop" / "logs.db")
    now = int(time.time() * 1e9)
    for n in (1, 2):
        labels = LogLabels(
            project="shop", service="web", replica=f"web-1-{n}", container=f"c{n}", host=f"h{n}"
        )
        store.write([(store.source(labels), now - (3 - n) * 10**9, None, f"hello {n}", None)])
    store.close()
    assert run(monkeypatch, "web") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["web-1-1@h1 hello 1", "web-1-2@h2 hello 2"]
    assert run(monkeypatch, "--host", "h2", "--json") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["message"], r["labels"]["host"]) for r in records] == [("hello 2", "h2")]
