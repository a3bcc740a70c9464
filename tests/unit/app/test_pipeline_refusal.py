"""Why a pipeline that did not succeed keeps its commit out of an environment."""

from __future__ import annotations

from conveyor.app.ci_views import JobView, PipelineView
from conveyor.app.controller import pipeline_refusal


def job(name: str, status: str, allow_failure: bool = False) -> JobView:
    return JobView(
        id=1, name=name, stage="deploy", status=status, when="manual",
        allow_failure=allow_failure, attempt=1, retry_of=None, duration=0.0, exit_code=None,
        failure_reason=None, executor=None, coverage=None, tests={}, artifacts=None,
        environment=None,
    )  # fmt: skip


def pipeline(status: str, *jobs: JobView) -> PipelineView:
    return PipelineView(
        id=7, ref="main", sha="a" * 40, source="push", status=status, started_at=0.0,
        finished_at=1.0, duration=1.0, executor="shell", tests={}, coverage=None, jobs=list(jobs),
    )  # fmt: skip


def test_a_failed_pipeline_names_the_jobs_that_failed_it() -> None:
    ran = pipeline("failed", job("unit", "failed"), job("lint", "failed", allow_failure=True))
    assert pipeline_refusal(ran) == "pipeline 7 failed: job unit failed"
    assert pipeline_refusal(pipeline("canceled")) == "pipeline 7 canceled"


def test_a_blocking_manual_job_is_named_with_how_to_unblock_it() -> None:
    reason = pipeline_refusal(
        pipeline("manual", job("unit", "success"), job("production", "manual"))
    )
    assert reason.startswith("pipeline 7 manual: it waits for the manual job(s) production")
    assert "allow_failure: true" in reason


def test_a_non_blocking_manual_job_is_not_blamed() -> None:
    reason = pipeline_refusal(pipeline("manual", job("production", "manual", allow_failure=True)))
    assert reason == "pipeline 7 manual"
