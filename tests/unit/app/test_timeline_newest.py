"""A commit's timeline asked for its newest pipelines reads only those, and counts the rest."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.timeline import _for_commit
from conveyor.store.db import Store

SHA = "c" * 40


def test_only_the_newest_pipelines_are_read_and_the_rest_counted(tmp_path: Path) -> None:
    stores = {"shop": Store.open(tmp_path / "shop"), "shop-ci": Store.open(tmp_path / "shop-ci")}
    try:
        made = []
        for i in range(6):
            store = stores["shop" if i % 2 else "shop-ci"]
            pid = store.pipelines.create("main", SHA, "push", ".gitlab-ci.yml", "shell")
            store.jobs.create(pid, f"job{i}", "test", "success", "on_success", False)
            made.append((store, pid))
        stores["shop"].pipelines.create("main", "d" * 40, "push", ".gitlab-ci.yml", "shell")

        everything = _for_commit(stores, SHA, "title", events=False)
        assert len(everything.pipelines) == 6 and everything.pipelines_left_out == 0

        newest = _for_commit(stores, SHA, "title", events=False, newest=2)
        assert newest.pipelines_left_out == 4
        assert sorted(j.name for p in newest.pipelines for j in p.jobs) == ["job4", "job5"]
    finally:
        for s in stores.values():
            s.close()
