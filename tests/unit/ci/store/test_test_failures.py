"""The failed JUnit cases a job records: failed and errored ones only, masked before they are
clipped, at most FAILURES_KEPT of them (the counts stay exact), replaced by a later record."""

from __future__ import annotations

from pathlib import Path

from conveyor.ci.run.masking import Masker
from conveyor.ci.run.records import FAILURES_KEPT, MESSAGE_KEPT, PipelineRecorder
from conveyor.ci.run.reports import TestCase, TestReport
from conveyor.model.events import Subject
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline

SECRET = "s3cr3t-T0ken-4f9a"


def recorder(tmp_path: Path) -> tuple[Store, PipelineRecorder, int, int]:
    store = Store.open(tmp_path / "state")
    rec = PipelineRecorder(store, Timeline(Subject(project="p"), store.events, "ci", []))
    pid = store.pipelines.create("main", "abc", "push", ".gitlab-ci.yml", "shell")
    job = store.jobs.create(pid, "unit", "test", "running", "on_success", False)
    return store, rec, pid, job


def test_only_failed_and_errored_cases_are_kept_masked(tmp_path: Path) -> None:
    store, rec, pid, job = recorder(tmp_path)
    # the secret straddles the clipping point: masking first leaves no half of it behind
    long = "x" * (MESSAGE_KEPT - 5) + SECRET
    report = TestReport(
        cases=(
            TestCase(name="ok"),
            TestCase(name="skipped", status="skipped", message="later"),
            TestCase(name=f"t[{SECRET}]", classname="c", status="failed", message=long),
            TestCase(name="boom", status="error", message=None, suite="s", file="r.xml"),
        )
    )
    rec.job_test_failures(job, report, Masker([SECRET]).mask_text)
    [failed, errored] = store.jobs.test_failures(pid)[job]
    assert (failed.status, failed.name, failed.classname) == ("failed", "t[[MASKED]]", "c")
    assert failed.message == ("x" * (MESSAGE_KEPT - 5) + "[MASKED]")[:MESSAGE_KEPT]
    assert (errored.status, errored.name, errored.suite, errored.file) == (
        "error", "boom", "s", "r.xml",
    )  # fmt: skip
    assert SECRET[:5] not in (failed.message or "")[MESSAGE_KEPT - 10 :]


def test_at_most_failures_kept_and_a_new_record_replaces_the_old(tmp_path: Path) -> None:
    store, rec, pid, job = recorder(tmp_path)
    many = TestReport(
        cases=tuple(TestCase(name=f"t{i}", status="failed") for i in range(FAILURES_KEPT + 20))
    )
    rec.job_test_failures(job, many, str)
    kept = store.jobs.test_failures(pid)[job]
    assert [f.name for f in kept] == [f"t{i}" for i in range(FAILURES_KEPT)]
    rec.job_test_failures(job, TestReport(cases=(TestCase(name="only", status="error"),)), str)
    assert [f.name for f in store.jobs.test_failures(pid)[job]] == ["only"]
    rec.job_test_failures(job, TestReport(), str)
    assert store.jobs.test_failures(pid) == {}
