from __future__ import annotations

from pathlib import Path

from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Service, Stack
from conveyor.plan.actions import Step
from conveyor.store.db import MIGRATIONS, Store


def release(version: str) -> Release:
    svc = Service(name="web", image="web:1", environment={"V": version})
    return Release(
        number=0,
        project="p",
        services={"web": ServiceRelease(service=svc, image_id="sha256:x", image_ref="web:1")},
        stack=Stack(project="p", file="/x/compose.yaml", services={"web": svc}),
    )


def test_releases_are_numbered_and_round_trip(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    r1 = s.save_release(release("1"))
    r2 = s.save_release(release("2"))
    assert (r1.number, r2.number) == (1, 2)
    assert s.release(2) == r2
    assert [r.number for r in s.releases()] == [2, 1]
    s.set_current_release(2)
    assert s.current_release() == r2


def test_spec_hash_changes_with_environment_only() -> None:
    a, b = release("1").services["web"], release("2").services["web"]
    assert a.spec_hash != b.spec_hash
    assert a.spec_hash == release("1").services["web"].spec_hash


def test_rollouts_and_journal(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    rid = s.start_rollout("deploy", 1, 2, "cli", "test")
    s.journal_begin(rid, 0, Step(kind="start", service="web", replica="web-2-1"))
    assert s.journal(rid)[0].status == "started"  # written before acting: a crash leaves this
    s.journal_end(rid, 0, "done", "ok")
    s.finish_rollout(rid, "succeeded")
    row = s.rollout(rid)
    assert row is not None and row.status == "succeeded" and row.duration is not None
    assert s.journal(rid)[0].step["replica"] == "web-2-1"
    assert [r.id for r in s.rollouts(status="succeeded")] == [rid]


def test_reopen_keeps_state_and_schema_version(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    s.set_port("frontend:web", 18123)
    s.event("x", "hello", n=1)
    s.close()
    s2 = Store.open(tmp_path)
    assert s2.ports() == {"frontend:web": 18123}
    assert s2.events()[0].data == {"n": 1}
    assert s2._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
