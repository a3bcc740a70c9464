"""What running a pipeline produces: each job attempt's `JobResult`, the `PipelineResult`, and
the `Reporter` that sees them live (the CLI prints them; tests collect them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from conveyor.ci.run.reports import TestReport

AttemptStatus = Literal["success", "failed", "canceled"]
# A trigger job with `strategy: mirror` (or `depend`) also ends as its downstream pipeline did.
ResultStatus = Literal["success", "failed", "canceled", "skipped", "manual"]


@dataclass(frozen=True)
class JobResult:
    job_id: int
    status: ResultStatus
    exit_code: int | None
    failure_reason: str | None
    allowed_failure: bool
    duration: float
    tests: TestReport | None = None
    coverage: float | None = None
    retried: bool = False  # this attempt failed and the job runs again


@dataclass(frozen=True)
class PipelineResult:
    pipeline_id: int
    status: str
    duration: float
    jobs: dict[str, JobResult]
    tests: dict[str, int]
    downstream: dict[str, PipelineResult] = field(default_factory=dict)  # by trigger job

    def all_jobs(self, prefix: str = "") -> dict[str, JobResult]:
        """Every job of this pipeline and of its downstream pipelines, the latter named
        `trigger -> job` as the live output shows them."""
        out = {prefix + name: result for name, result in self.jobs.items()}
        for trigger, child in self.downstream.items():
            out.update(child.all_jobs(f"{prefix}{trigger} -> "))
        return out


def tests_json(report: TestReport | None) -> dict[str, int]:
    """A JUnit report's counts as stored on a job (empty without a report)."""
    if report is None:
        return {}
    return {
        "total": report.total,
        "passed": report.passed,
        "failed": report.failed,
        "errors": report.errors,
        "skipped": report.skipped,
    }


def sum_tests(reports: Iterable[TestReport | None]) -> dict[str, int]:
    """The pipeline's test counts: its jobs' counts added up."""
    total: dict[str, int] = {}
    for report in reports:
        for key, value in tests_json(report).items():
            total[key] = total.get(key, 0) + value
    return total
