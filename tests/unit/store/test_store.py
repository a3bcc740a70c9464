from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from conveyor.model.events import Subject
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Service, Stack
from conveyor.plan.actions import Step
from conveyor.store import migrations
from conveyor.store.db import Store
from conveyor.store.migrations import MIGRATIONS
from conveyor.store.pipelines import TestFailure
from conveyor.store.timeline import Timeline


def release(version: str, commit: str | None = None) -> Release:
    svc = Service(name="web", image="web:1", environment={"V": version})
    return Release(
        number=0,
        project="p",
        services={"web": ServiceRelease(service=svc, image_id="sha256:x", image_ref="web:1")},
        stack=Stack(project="p", file="/x/compose.yaml", services={"web": svc}),
        commit=commit,
    )


def test_releases_are_numbered_and_round_trip(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    r1 = s.releases.save(release("1", commit="abc123"))
    r2 = s.releases.save(release("2"))
    assert (r1.number, r2.number) == (1, 2)
    assert s.releases.get(2) == r2
    assert [r.number for r in s.releases.latest()] == [2, 1]
    assert s.releases.for_commit("abc") == [r1]
    s.environment.make_current(1)
    s.environment.make_current(2)
    assert s.current_release() == r2
    assert s.previous_release() == r1
    assert s.environment.pointer("target_release") is None


def test_spec_hash_changes_with_environment_only() -> None:
    a, b = release("1").services["web"], release("2").services["web"]
    assert a.spec_hash != b.spec_hash
    assert a.spec_hash == release("1").services["web"].spec_hash


def test_rollouts_and_journal(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    rid = s.rollouts.start("deploy", 1, 2, "cli", "test")
    s.journal.begin(rid, 0, Step(kind="start", service="web", replica="web-2-1"))
    assert s.journal.of(rid)[0].status == "started"  # written before acting: a crash leaves this
    s.journal.end(rid, 0, "done", "ok")
    s.rollouts.finish(rid, "succeeded")
    row = s.rollouts.get(rid)
    assert row is not None and row.status == "succeeded" and row.duration is not None
    j = s.journal.of(rid)[0]
    assert (j.kind, j.service, j.replica) == ("start", "web", "web-2-1")
    assert [r.id for r in s.rollouts.latest(status="succeeded")] == [rid]
    rec = s.rollouts.start("recover", 2, 2, "cli", "finish it", recovers=rid)
    got = s.rollouts.get(rec)
    assert got is not None and got.recovers == rid


def test_ports_and_frontends_are_typed(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    s.ports.set_frontend("web", 18123)
    s.ports.set_stats(18124)
    s.environment.set_frontends(["web", "api"])
    s.close()
    s2 = Store.open(tmp_path)
    assert s2.ports.frontend_ports() == {"web": 18123}
    assert s2.ports.stats_port() == 18124
    assert s2.ports.taken() == {18123, 18124}
    assert s2.environment.frontends() == ["web", "api"]
    assert s2.db.version == len(MIGRATIONS)


def test_timeline_records_durable_events_and_delivers_all(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    seen: list[str] = []
    tl = Timeline(Subject(project="p", environment="p"), s.events)
    tl.subscribe(lambda e: seen.append(e.kind))
    r = tl.bind(rollout=7, release=2, commit="abc123")
    r.emit("step.started", "web: start web-2-1", service="web")  # ephemeral: not recorded
    r.emit("rollout.succeeded", "deploy to release 2", data={"seconds": 1.5})
    assert seen == ["step.started", "rollout.succeeded"]
    events = s.events.about(commit="abc")
    assert [(e.kind, e.subject.rollout, e.subject.release) for e in events] == [
        ("rollout.succeeded", 7, 2)
    ]
    assert events[0].data == {"seconds": 1.5} and events[0].id > 0


def test_state_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    s = Store.open(state)
    s.releases.save(release("1"))
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for f in ("state.db", "state.db-wal", "state.db-shm"):
        assert stat.S_IMODE((state / f).stat().st_mode) == 0o600, f


def test_a_database_from_conveyor_0_1_opens_and_upgrades(tmp_path: Path) -> None:
    """A state.db as 0.1 wrote it (migrations 1-4, key-value pointers, 'frontend:x' port keys,
    recovery named in the reason) keeps every fact after the upgrade."""
    state = tmp_path / "shop"
    state.mkdir()
    db = sqlite3.connect(state / "state.db")
    from conveyor.store.migrations import _statements

    for parts in MIGRATIONS[:4]:
        for stmt in _statements(str(parts[0])):
            db.execute(stmt)
    db.execute("PRAGMA user_version = 4")
    body = release("1").model_copy(update={"number": 1}).model_dump_json()
    db.execute("INSERT INTO releases VALUES (1, 1.0, 'abc', ?)", (body,))
    db.execute(
        "INSERT INTO releases VALUES (2, 2.0, 'def', ?)",
        (body.replace('"number":1', '"number":2'),),
    )
    db.executemany(
        "INSERT INTO kv VALUES (?, ?)",
        [("current_release", "2"), ("previous_release", "1"), ("frontends", "web,api")],
    )
    db.executemany(
        "INSERT INTO ports VALUES (?, ?)",
        [("frontend:web", 18001), ("frontend:api", 18002), ("stats", 18003)],
    )
    db.execute(
        "INSERT INTO rollouts (id, kind, from_release, to_release, status, started_at, actor, "
        "reason) VALUES (1, 'deploy', 1, 2, 'interrupted', 1, 'cli', 'conveyor deploy'), "
        "(2, 'recover', 1, 2, 'succeeded', 2, 'cli', 'finish interrupted rollout 1')"
    )
    step = json.dumps({"kind": "start", "service": "web", "replica": "web-2-1"})
    db.execute("INSERT INTO journal VALUES (1, 0, ?, 'done', 1, 2, NULL)", (step,))
    db.execute(
        "INSERT INTO events (ts, kind, actor, message, data) VALUES "
        "(1, 'rollout.started', 'cli', 'deploy to release 2', '{\"rollout\": 1, \"steps\": 3}')"
    )
    db.execute(
        "INSERT INTO pipelines (id, ref, sha, source, status, started_at, file, executor, tests) "
        "VALUES (1, 'main', 'abc', 'push', 'success', 1, '.gitlab-ci.yml', 'shell', "
        '\'{"total": 3, "passed": 3}\')'
    )
    db.execute(
        "INSERT INTO ci_jobs (id, pipeline_id, name, stage, status, when_, tests, artifacts, "
        "environment) VALUES (1, 1, 'review', 'deploy', 'success', 'on_success', '{}', "
        '\'{"files": 2, "bytes": 10}\', \'{"name": "review/main", "url": null, '
        '"action": "start", "on_stop": "stop"}\')'
    )
    db.commit()
    db.close()

    s = Store.open(state)
    assert s.db.version == len(MIGRATIONS)
    assert s.environment.name == "shop"
    cur, prev = s.current_release(), s.previous_release()
    assert cur is not None and cur.number == 2 and prev is not None and prev.number == 1
    assert s.ports.frontend_ports() == {"web": 18001, "api": 18002}
    assert s.ports.stats_port() == 18003
    assert s.environment.frontends() == ["web", "api"]
    rec = s.rollouts.get(2)
    assert rec is not None and rec.recovers == 1
    assert s.journal.of(1)[0].replica == "web-2-1"
    [ev] = s.events.about(rollout=1)
    assert (ev.kind, ev.data, ev.subject.project) == ("rollout.started", {"steps": 3}, "shop")
    p = s.pipelines.get(1)
    assert p is not None and p.tests == {
        "total": 3,
        "passed": 3,
        "failed": 0,
        "errors": 0,
        "skipped": 0,
    }
    job = s.jobs.find("review")
    assert job is not None and job.tests == {} and job.artifacts == {"files": 2, "bytes": 10}
    assert job.environment is not None and job.environment["name"] == "review/main"
    assert set(s.jobs.environments()) == {"review/main"}


def test_downstream_pipelines_link_to_their_parent_and_trigger_job(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    parent = s.pipelines.create("main", "abc", "push", ".gitlab-ci.yml", "shell")
    trigger = s.jobs.create(parent, "child", "test", "running", "on_success", False)
    child = s.pipelines.create(
        "main", "abc", "parent_pipeline", "child.yml", "shell", status="created",
        parent=parent, trigger_job=trigger,
    )  # fmt: skip
    s.pipelines.start(
        child, ref="main", sha="abc", source="parent_pipeline", file="child.yml",
        executor="shell", on_new_commit="interruptible", on_job_failure="all",
    )  # fmt: skip
    row = s.pipelines.get(child)
    assert row is not None and (row.parent_pipeline_id, row.trigger_job_id) == (parent, trigger)
    assert (row.status, row.auto_cancel_on_new_commit, row.auto_cancel_on_job_failure) == (
        "running", "interruptible", "all",
    )  # fmt: skip
    assert [p.id for p in s.pipelines.downstream(parent)] == [child]
    # GitLab's pipeline list shows the parent only; auto-cancel looks at running children too
    # (one may outlive its parent), never at another project's pipeline.
    assert [p.id for p in s.pipelines.latest()] == [parent]
    other = s.pipelines.create("main", "def", "pipeline", "x.yml", "shell", parent=parent)
    assert [p.id for p in s.pipelines.running_for_ref("main", other + 1)] == [parent, child]
    failed = s.pipelines.create("main", "abc", "parent_pipeline", "x.yml", "shell", parent=parent)
    s.pipelines.discard(failed)
    assert s.pipelines.get(failed) is None


def test_a_cancel_request_for_everything_is_never_narrowed(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    pid = s.pipelines.create("main", "abc", "push", ".gitlab-ci.yml", "shell")
    assert s.pipelines.cancel_request(pid) is None
    s.pipelines.request_cancel(pid, "interruptible")
    assert s.pipelines.cancel_request(pid) == "interruptible"
    s.pipelines.request_cancel(pid)
    s.pipelines.request_cancel(pid, "interruptible")
    assert s.pipelines.cancel_request(pid) == "all" and s.pipelines.cancel_requested(pid)


def test_a_database_at_migration_6_gains_the_downstream_links_of_7(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 6 keeps failed JUnit cases, 7 links downstream pipelines and keeps
    workflow:auto_cancel: a database that stopped at 6 keeps its failures after 7."""
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:6])
    s = Store.open(tmp_path)
    assert s.db.version == 6
    s.db.execute(
        "INSERT INTO pipelines (ref, sha, source, status, started_at, file, executor) "
        "VALUES ('main', 'abc', 'push', 'failed', 1.0, '.gitlab-ci.yml', 'shell')"
    )
    s.db.execute(
        "INSERT INTO jobs (pipeline_id, name, stage, status, when_) "
        "VALUES (1, 'unit', 'test', 'failed', 'on_success')"
    )
    failure = TestFailure(status="failed", name="test_total", classname="shop", message="no")
    s.jobs.record_test_failures(1, [failure])
    s.close()
    monkeypatch.undo()
    s = Store.open(tmp_path)
    assert s.db.version == len(MIGRATIONS)
    assert s.jobs.test_failures(1) == {1: [failure]}
    row = s.pipelines.get(1)
    assert row is not None and (row.parent_pipeline_id, row.trigger_job_id) == (None, None)
    assert (row.auto_cancel_on_new_commit, row.auto_cancel_on_job_failure) == (
        "conservative", "none",
    )  # fmt: skip
    assert [p.id for p in s.pipelines.latest()] == [1]


def test_address_slots_are_kept(tmp_path: Path) -> None:
    """A service address keeps its slot (its IP on every project network) for good."""
    s = Store.open(tmp_path)
    s.address_slots.set("web", 0)
    s.address_slots.set("db", 1)
    with pytest.raises(sqlite3.IntegrityError):
        s.address_slots.set("cache", 1)  # one service per slot
    s.close()
    assert Store.open(tmp_path).address_slots.all() == {"web": 0, "db": 1}
