"""Retry and play of one job of a stored pipeline (`conveyor.ci.select.rerun`): who may be run
again, which skipped jobs come back, and the pipeline's status as the schedule recomputes it
when the requeued jobs end (GitLab's AfterRequeueJobService and composite status)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from conveyor.ci.select.rerun import StoredJob, dependents, refusal, seed
from conveyor.ci.select.schedule import Schedule
from conveyor.model.pipeline import JobRun, NeedSpec, When

STAGES = ("build", "test", "deploy")


def job(
    name: str,
    stage: str,
    needs: tuple[str, ...] | None = None,
    when: When = "on_success",
    allow_failure: bool = False,
) -> JobRun:
    return JobRun(
        name=name,
        spec=name,
        stage=stage,
        when=when,
        allow_failure=allow_failure,
        needs=None if needs is None else tuple(NeedSpec(job=n) for n in needs),
    )


def stored(statuses: Mapping[str, str], allowed: tuple[str, ...] = ()) -> dict[str, StoredJob]:
    return {
        name: StoredJob(
            id=i + 1,
            name=name,
            status=status,
            allow_failure=name in allowed,
            attempt=1,
            started=status not in ("skipped", "manual", "created"),
        )
        for i, (name, status) in enumerate(statuses.items())
    }


def drive(schedule: Schedule, results: Mapping[str, str]) -> list[str]:
    """Run what becomes ready (each ends as `results` says, else success); the order run."""
    ran: list[str] = []
    for _ in range(20):
        batch = [j.name for j in schedule.ready(0.0)]
        if not batch:
            break
        for name in batch:
            schedule.start(name)
            ran.append(name)
            schedule.finish(name, results.get(name, "success"))  # type: ignore[arg-type]
    return ran


def pipeline() -> Schedule:
    return Schedule(
        jobs=[
            job("build", "build"),
            job("unit", "test"),
            job("lint", "test"),
            job("deploy", "deploy"),
            job("notify", "deploy", needs=("lint",)),
        ],
        stages=STAGES,
    )


def test_retry_of_a_failed_job_runs_it_and_the_skipped_jobs_after_it() -> None:
    s = pipeline()
    latest = stored(
        {"build": "success", "unit": "failed", "lint": "success", "deploy": "skipped",
         "notify": "success"}
    )  # fmt: skip
    again = seed(s, latest, "unit")
    assert again == {"unit", "deploy"}
    assert s.pipeline_status() == "running"
    assert drive(s, {}) == ["unit", "deploy"]
    assert s.pipeline_status() == "success"
    assert s.states["notify"].status == "success"  # not run again: it does not wait for unit


def test_a_retry_that_fails_again_leaves_the_pipeline_failed_and_the_rest_skipped() -> None:
    s = pipeline()
    seed(s, stored({"build": "success", "unit": "failed", "lint": "success",
                    "deploy": "skipped", "notify": "success"}), "unit")  # fmt: skip
    assert drive(s, {"unit": "failed"}) == ["unit"]
    assert s.states["deploy"].status == "skipped"
    assert s.pipeline_status() == "failed"


def test_needs_dependents_come_back_transitively_and_only_when_skipped() -> None:
    s = Schedule(
        jobs=[
            job("a", "build"),
            job("b", "build", needs=("a",)),
            job("c", "build", needs=("b",)),
            job("d", "test", needs=()),
        ],
        stages=STAGES,
    )
    assert dependents(s, "a") == {"b", "c"}
    again = seed(s, stored({"a": "failed", "b": "skipped", "c": "skipped", "d": "failed"}), "a")
    assert again == {"a", "b", "c"}
    assert drive(s, {}) == ["a", "b", "c"]
    assert s.pipeline_status() == "failed"  # d failed on its own and was not retried


def test_play_of_a_blocking_manual_job_unblocks_the_stages_after_it() -> None:
    s = Schedule(
        jobs=[job("build", "build"), job("gate", "test", when="manual"), job("ship", "deploy")],
        stages=STAGES,
    )
    latest = stored({"build": "success", "gate": "manual", "ship": "created"})
    # `ship` never started: a created job waiting behind the blocking manual job
    assert s.pipeline_status() == "created"
    seed(s, latest, "gate")
    assert drive(s, {}) == ["gate", "ship"]
    assert s.pipeline_status() == "success"


def test_a_canceled_dependent_stays_canceled_as_on_gitlab() -> None:
    s = pipeline()
    seed(s, stored({"build": "success", "unit": "failed", "lint": "canceled",
                    "deploy": "canceled", "notify": "skipped"}), "unit")  # fmt: skip
    assert drive(s, {}) == ["unit"]
    assert s.states["deploy"].status == "canceled"
    assert s.pipeline_status() == "canceled"


def test_an_allowed_failure_stays_allowed() -> None:
    s = pipeline()
    latest = stored(
        {"build": "success", "unit": "failed", "lint": "failed", "deploy": "skipped",
         "notify": "success"},
        allowed=("lint",),
    )  # fmt: skip
    seed(s, latest, "unit")
    assert drive(s, {}) == ["unit", "deploy"]  # lint's failure was allowed: deploy runs
    assert s.pipeline_status() == "success"


@pytest.mark.parametrize(
    ("kind", "status", "pipeline", "expected"),
    [
        ("retry", "failed", "failed", None),
        ("retry", "canceled", "canceled", None),
        ("retry", "interrupted", "interrupted", None),
        ("retry", "success", "success", "only a failed, canceled or interrupted job"),
        ("retry", "manual", "manual", "play it instead"),
        ("retry", "failed", "running", "its pipeline is running"),
        ("play", "manual", "manual", None),
        ("play", "manual", "success", None),
        ("play", "failed", "failed", "not a manual job"),
        ("play", "manual", "running", "its pipeline is running"),
    ],
)
def test_refusal(kind: str, status: str, pipeline: str, expected: str | None) -> None:
    latest = stored({"build": status})
    said = refusal(kind, pipeline, latest["build"], latest)  # type: ignore[arg-type]
    if expected is None:
        assert said is None
    else:
        assert said is not None and expected in said


def test_only_the_latest_attempt_is_retried() -> None:
    old = StoredJob(
        id=1, name="unit", status="failed", allow_failure=False, attempt=1, started=True
    )
    new = StoredJob(
        id=2, name="unit", status="failed", allow_failure=False, attempt=2, started=True
    )
    said = refusal("retry", "failed", old, {"unit": new})
    assert said is not None and "#2 is" in said
    assert refusal("retry", "failed", new, {"unit": new}) is None
