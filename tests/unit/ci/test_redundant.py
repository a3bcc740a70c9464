"""Auto-cancel of redundant pipelines (`PipelineRecorder.cancel_redundant`) when what is newer
is a commit that no pipeline runs yet (the GitOps server's case), against a real store."""

from __future__ import annotations

from pathlib import Path

from conveyor.ci.run.records import PipelineRecorder, Redundant
from conveyor.model.events import Event, Subject
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline

OLD, NEW = "a" * 40, "b" * 40


def running(store: Store, sha: str, mode: str, *jobs: bool, ref: str = "main") -> int:
    """A running pipeline of `sha` whose started jobs are interruptible or not (`jobs`)."""
    pid = store.pipelines.create(ref, sha, "push", ".gitlab-ci.yml", "shell")
    store.pipelines.start(
        pid, ref=ref, sha=sha, source="push", file=".gitlab-ci.yml", executor="shell",
        on_new_commit=mode, on_job_failure="none",
    )  # fmt: skip
    for n, interruptible in enumerate(jobs):
        job = store.jobs.create(pid, f"job{n}", "test", "running", "on_success", False)
        store.jobs.update(job, started_at=1.0, interruptible=interruptible)
    return pid


def test_a_newer_commit_applies_each_running_pipelines_own_policy(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    events: list[Event] = []
    recorder = PipelineRecorder(store, Timeline(Subject(project="p"), None, "t", [events.append]))
    all_interruptible = running(store, OLD, "conservative", True, True)
    one_not = running(store, OLD, "conservative", True, False)
    some = running(store, OLD, "interruptible", True, False)
    none = running(store, OLD, "none", True)
    of_new = running(store, NEW, "conservative", True)  # the newer commit's own: not redundant
    other_ref = running(store, OLD, "conservative", True, ref="feature")

    decided = recorder.cancel_redundant("main", commit=NEW)

    assert decided == [
        Redundant(all_interruptible, "canceled"),
        Redundant(one_not, "kept", ("job1",)),
        Redundant(some, "interruptible", ("job1",)),
        Redundant(none, "kept"),
    ]
    scopes = {p: store.pipelines.cancel_request(p) for p in (all_interruptible, one_not, some)}
    assert scopes == {all_interruptible: "all", one_not: None, some: "interruptible"}
    for pid in (none, of_new, other_ref):
        assert store.pipelines.cancel_request(pid) is None
    superseded = {p: store.pipelines.get(p).superseded_by for p in (all_interruptible, some)}  # type: ignore[union-attr]
    assert superseded == {all_interruptible: NEW, some: NEW}
    assert [(e.kind, e.subject.pipeline, e.data) for e in events] == [
        ("pipeline.canceled", all_interruptible, {"scope": "all", "superseded_by": NEW}),
        ("pipeline.canceled", some, {"scope": "interruptible", "superseded_by": NEW}),
    ]
    assert events[0].message == (
        f"pipeline #{all_interruptible} is redundant: commit {NEW[:12]} is newer of main"
    )
    store.close()


def test_a_newer_pipeline_of_the_same_commit_cancels_without_superseding(tmp_path: Path) -> None:
    """`conveyor ci run` run again for the same commit: the older pipeline is redundant, but
    nothing newer superseded it (its end is reported as an ordinary cancel)."""
    store = Store.open(tmp_path)
    recorder = PipelineRecorder(store, Timeline(Subject(project="p")))
    older = running(store, OLD, "conservative", True)
    newer = running(store, OLD, "conservative")
    assert recorder.cancel_redundant("main", pipeline=newer, commit=OLD) == [
        Redundant(older, "canceled")
    ]
    row = store.pipelines.get(older)
    assert row is not None and row.cancel_requested and row.superseded_by is None
    store.close()
