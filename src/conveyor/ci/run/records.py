"""Everything the runner records about a pipeline and its jobs, through `PipelineStore`: one
place that knows the store's calls and the id of each job's latest attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from conveyor.ci.run.results import JobResult, sum_tests, tests_json
from conveyor.ci.select.schedule import Schedule
from conveyor.ci.select.variables import expand
from conveyor.model.pipeline import EnvironmentSpec, JobRun, PipelineSpec
from conveyor.store.pipelines import PipelineStore


class PipelineRecorder:
    def __init__(self, store: PipelineStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._job_ids: dict[str, int] = {}  # JobRun name -> id of its latest attempt

    def job_id(self, name: str) -> int | None:
        """The id of the latest attempt of the job named `name`, if it started."""
        with self._lock:
            return self._job_ids.get(name)

    # --- the pipeline ----------------------------------------------------------------------

    def start_pipeline(
        self, spec: PipelineSpec, predefined: Mapping[str, str], executor: str
    ) -> int:
        return self.store.create_pipeline(
            predefined.get("CI_COMMIT_REF_NAME"),
            predefined.get("CI_COMMIT_SHA"),
            predefined.get("CI_PIPELINE_SOURCE", "push"),
            spec.file,
            executor,
        )

    def cancel_redundant(self, ref: str | None, pid: int) -> None:
        """GitLab's default auto-cancel (`on_new_commit: conservative`): an older running
        pipeline of the same branch is canceled unless one of its started jobs is not
        `interruptible`."""
        for old in self.store.running_for_ref(ref, pid):
            started = [j for j in self.store.jobs(old.id) if j.started_at is not None]
            if all(j.interruptible for j in started):
                self.store.request_cancel(old.id)

    def cancel_requested(self, pid: int) -> bool:
        return self.store.cancel_requested(pid)

    def finish_pipeline(
        self, pid: int, schedule: Schedule, results: Mapping[str, JobResult]
    ) -> tuple[str, dict[str, int]]:
        """Record the jobs that never ran and the pipeline's outcome: (status, test counts)."""
        for name, state in schedule.states.items():
            if name not in results:
                job_id = self.store.create_job(
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
        self.store.finish_pipeline(pid, status, tests, coverage)
        return status, tests

    # --- one job attempt -------------------------------------------------------------------

    def start_job(self, pid: int, job: JobRun, attempt: int) -> int:
        """A new attempt of `job`, running; a retry points at the attempt before it."""
        previous = self.job_id(job.name)
        job_id = self.store.create_job(
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
        self, job_id: int, *, log_path: str, executor: str, interruptible: bool
    ) -> None:
        self.store.update_job(
            job_id,
            started_at=time.time(),
            log_path=log_path,
            executor=executor,
            interruptible=interruptible,
        )

    def job_environment(
        self, job_id: int, environment: EnvironmentSpec, variables: Mapping[str, str]
    ) -> None:
        """The environment a job deploys to (or stops), its name and url expanded."""
        self.store.update_job(
            job_id,
            environment={
                "name": expand(environment.name, variables),
                "url": expand(environment.url, variables) if environment.url else None,
                "action": environment.action,
                "on_stop": environment.on_stop,
            },
        )

    def job_artifacts(self, job_id: int, files: int, size: int) -> None:
        self.store.update_job(job_id, artifacts={"files": files, "bytes": size})

    def finish_job(self, result: JobResult, *, allow_failure: bool) -> None:
        self.store.update_job(
            result.job_id,
            status=result.status,
            finished_at=time.time(),
            exit_code=result.exit_code,
            failure_reason=result.failure_reason,
            coverage=result.coverage,
            tests=tests_json(result.tests),
            allow_failure=allow_failure,
        )
