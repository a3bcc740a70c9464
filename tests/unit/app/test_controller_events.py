"""The server's events: kept in its database, so the API lists them across restarts."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.controller import Controller
from conveyor.store.server_db import ServerDatabase


def test_the_servers_events_outlive_a_restart_and_the_oldest_are_pruned(tmp_path: Path) -> None:
    sdb = ServerDatabase.open(tmp_path)
    first = Controller(str(tmp_path / "repo.git"), tmp_path, {}, journal=sdb.events)
    for n in range(5):
        first._emit("source.fetched", f"fetch {n}")
    sdb.close()

    again = ServerDatabase.open(tmp_path)
    second = Controller(str(tmp_path / "repo.git"), tmp_path, {}, journal=again.events)
    kept = second.events(None, 100)
    assert [e.message for e in kept] == [f"fetch {n}" for n in range(5)]
    assert [e.message for e in second.events(kept[2].id, 100)] == ["fetch 3", "fetch 4"]
    second._emit("source.fetched", "fetch 5")  # ids keep growing after the restart
    assert second.events(kept[-1].id, 100)[0].id > kept[-1].id
    again.events.keep_newest(2)
    assert [e.message for e in second.events(None, 100)] == ["fetch 4", "fetch 5"]
    again.close()
