"""Everything the runner records and reports about a pipeline and its jobs: the rows in the
project's store, and the timeline events (pipeline.started, job.started, job.output,
job.finished, pipeline.finished) that the CLI renders live. One place that knows the store's
calls and the id of each job's latest attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from conveyor.ci.run.reports import TestReport
from conveyor.ci.run.results import JobResult, sum_tests, tests_json
from conveyor.ci.select.schedule import Schedule
from conveyor.ci.select.variables import expand
from conveyor.model.pipeline import EnvironmentSpec, JobRun, PipelineSpec
from conveyor.store.db import Store
from conveyor.store.pipelines import TestFailure
from conveyor.store.timeline import Timeline

# A report may hold thousands of failures: the first ones are kept, clipped (counts stay exact).
FAILURES_KEPT = 100
MESSAGE_KEPT = 2000  # characters of a failure's message


class PipelineRecorder:
    def __init__(self, store: Store, timeline: Timeline) -> None:
        self.pipelines = store.pipelines
        self.jobs = store.jobs
        self.artifacts = store.artifacts
        self.timeline = timeline
        self._lock = threading.Lock()
        self._job_ids: dict[str, int] = {}  # JobRun name -> id of its latest attempt

    def job_id(self, name: str) -> int | None:
        """The id of the latest attempt of the job named `name`, if it started."""
        with self._lock:
            return self._job_ids.get(name)

    # --- the pipeline ----------------------------------------------------------------------

    def start_pipeline(
        self, spec: PipelineSpec, predefined: Mapping[str, str], executor: str, jobs: int
    ) -> int:
        """Record a new running pipeline of `jobs` jobs and announce it."""
        ref = predefined.get("CI_COMMIT_REF_NAME")
        pid = self.pipelines.create(
            ref,
            predefined.get("CI_COMMIT_SHA"),
            predefined.get("CI_PIPELINE_SOURCE", "push"),
            spec.file,
            executor,
        )
        self.timeline = self.timeline.bind(
            pipeline=pid, commit=predefined.get("CI_COMMIT_SHA") or None
        )
        self.timeline.emit(
            "pipeline.started",
            f"pipeline #{pid} for {ref or 'no ref'}",
            data={
                "ref": ref,
                "source": predefined.get("CI_PIPELINE_SOURCE", "push"),
                "short_sha": predefined.get("CI_COMMIT_SHORT_SHA"),
                "jobs": jobs,
            },
        )
        return pid

    def cancel_redundant(self, ref: str | None, pid: int) -> None:
        """GitLab's default auto-cancel (`on_new_commit: conservative`): an older running
        pipeline of the same branch is canceled unless one of its started jobs is not
        `interruptible`."""
        for old in self.pipelines.running_for_ref(ref, pid):
            started = [j for j in self.jobs.of(old.id) if j.started_at is not None]
            if all(j.interruptible for j in started):
                self.pipelines.request_cancel(old.id)
                self.timeline.emit(
                    "pipeline.canceled",
                    f"pipeline #{old.id} is redundant: #{pid} runs a newer commit of {ref}",
                    pipeline=old.id,
                )

    def cancel_requested(self, pid: int) -> bool:
        return self.pipelines.cancel_requested(pid)

    def finish_pipeline(
        self, pid: int, schedule: Schedule, results: Mapping[str, JobResult]
    ) -> tuple[str, dict[str, int]]:
        """Record the jobs that never ran and the pipeline's outcome: (status, test counts)."""
        for name, state in schedule.states.items():
            if name not in results:
                job_id = self.jobs.create(
                    pid,
                    name,
                    state.job.stage,
                    state.status,
                    state.job.when,
                    state.job.allow_failure,
                )
                with self._lock:
                    self._job_ids[name] = job_id
        status = schedule.pipeline_status()
        tests = sum_tests(r.tests for r in results.values())
        covs = [r.coverage for r in results.values() if r.coverage is not None]
        coverage = sum(covs) / len(covs) if covs else None
        self.pipelines.finish(pid, status, tests, coverage)
        row = self.pipelines.get(pid)
        self.timeline.emit(
            "pipeline.finished",
            f"pipeline #{pid} {status}",
            level="info" if status in ("success", "manual", "skipped") else "error",
            data={
                "status": status,
                "tests": tests,
                "seconds": round(row.duration or 0.0, 3) if row else None,
            },
        )
        return status, tests

    # --- one job attempt -------------------------------------------------------------------

    def start_job(self, pid: int, job: JobRun, attempt: int) -> int:
        """A new attempt of `job`, running; a retry points at the attempt before it."""
        previous = self.job_id(job.name)
        job_id = self.jobs.create(
            pid,
            job.name,
            job.stage,
            "running",
            job.when,
            job.allow_failure,
            attempt,
            retry_of=previous if attempt > 1 else None,
        )
        with self._lock:
            self._job_ids[job.name] = job_id
        return job_id

    def job_running(
        self, job: JobRun, job_id: int, *, log_path: str, executor: str, attempt: int
    ) -> None:
        self.jobs.update(
            job_id,
            started_at=time.time(),
            log_path=log_path,
            executor=executor,
            interruptible=job.interruptible,
        )
        self.timeline.emit(
            "job.started",
            job.name,
            job=job_id,
            data={"name": job.name, "stage": job.stage, "executor": executor, "attempt": attempt},
        )

    def job_output(self, job: JobRun, job_id: int | None, text: str) -> None:
        """A chunk of a job's (masked) output, for live display; its log file keeps it."""
        self.timeline.emit("job.output", text, job=job_id, data={"name": job.name})

    def job_finished(self, job: JobRun, result: JobResult) -> None:
        """Reported once the attempt is over and timed (recorded by `finish_job`)."""
        self.timeline.emit(
            "job.finished",
            f"{job.name} {result.status}",
            level="error" if result.status == "failed" and not result.allowed_failure else "info",
            job=result.job_id,
            data={
                "name": job.name,
                "status": result.status,
                "exit_code": result.exit_code,
                "failure_reason": result.failure_reason,
                "allowed_failure": result.allowed_failure,
                "retried": result.retried,
                "seconds": round(result.duration, 3),
            },
        )

    def job_environment(
        self, job_id: int, environment: EnvironmentSpec, variables: Mapping[str, str]
    ) -> None:
        """The environment a job deploys to (or stops), its name and url expanded."""
        self.jobs.update(
            job_id,
            environment={
                "name": expand(environment.name, variables),
                "url": expand(environment.url, variables) if environment.url else None,
                "action": environment.action,
                "on_stop": environment.on_stop,
            },
        )

    def job_artifacts(self, job_id: int, files: int, size: int) -> None:
        self.artifacts.record(job_id, files, size)

    def job_test_failures(
        self, job_id: int, report: TestReport | None, mask: Callable[[str], str]
    ) -> None:
        """The failed and errored cases of the job's JUnit report, `mask`ed as its log is."""
        failed = [c for c in report.cases if c.status in ("failed", "error")] if report else []

        def kept(text: str | None) -> str | None:
            # masked before it is clipped: a cut must not leave half a secret unmasked
            return None if text is None else mask(text)[:MESSAGE_KEPT]

        self.jobs.record_test_failures(
            job_id,
            [
                TestFailure(
                    status="failed" if c.status == "failed" else "error",
                    name=mask(c.name),
                    classname=kept(c.classname),
                    suite=kept(c.suite),
                    file=kept(c.file),
                    message=kept(c.message),
                )
                for c in failed[:FAILURES_KEPT]
            ],
        )

    def finish_job(self, result: JobResult, *, allow_failure: bool) -> None:
        self.jobs.update(
            result.job_id,
            status=result.status,
            finished_at=time.time(),
            exit_code=result.exit_code,
            failure_reason=result.failure_reason,
            coverage=result.coverage,
            tests=tests_json(result.tests),
            allow_failure=allow_failure,
        )
