"""The log store's line in `conveyor status`: absent without store and collector, running
while a collector holds the store's lock, with the lines, size and newest line's age."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor.app.logs import component
from conveyor.model.logs import LogLabels
from conveyor.observe.logs.collect import _release_lock, _take_lock, collecting_pid
from conveyor.observe.logs.store import LOGS_DB, LogStore


def test_no_store_and_no_collector_is_no_line(tmp_path: Path) -> None:
    assert component(tmp_path) is None


def test_a_store_nobody_writes_is_shown_not_running(tmp_path: Path) -> None:
    store = LogStore.open(tmp_path / LOGS_DB)
    src = store.source(LogLabels(project="shop", service="web", container="c1"))
    now = time.time()
    store.write([(src, int((now - 120) * 1e9), 2, f"line {i}", None) for i in range(3)])
    store.close()
    view = component(tmp_path, now=now)
    assert view is not None
    assert (view.name, view.url, view.running, view.healthy) == (
        "log store",
        str(tmp_path / LOGS_DB),
        False,
        False,
    )
    assert view.detail.startswith("3 lines, ")
    assert "newest 2m ago" in view.detail and "no collector runs" in view.detail


def test_a_collector_holding_the_lock_makes_it_running_and_healthy(tmp_path: Path) -> None:
    LogStore.open(tmp_path / LOGS_DB).close()
    fd = _take_lock(tmp_path / "logs.lock")
    try:
        assert collecting_pid(tmp_path) == os.getpid()
        view = component(tmp_path)
        assert view is not None
        assert (view.running, view.healthy, view.pid) == (True, True, os.getpid())
        assert view.detail.startswith("0 lines")
    finally:
        _release_lock(fd)
    assert collecting_pid(tmp_path) is None
