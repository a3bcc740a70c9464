"""One attempt of a job, end to end: its record, variables and workspace, the executor running
`before_script` + `script` (under its `resource_group`) and `after_script`, its files, and the
`JobResult` GitLab's rules make of it."""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
from dataclasses import dataclass, replace
from functools import partial

from conveyor.ci.run.attempt import Attempt
from conveyor.ci.run.config import AFTER_SCRIPT_TIMEOUT, RunConfig
from conveyor.ci.run.executors import Executors
from conveyor.ci.run.handoff import JobFiles
from conveyor.ci.run.job_env import JobVariables
from conveyor.ci.run.job_executor import JobExecutor
from conveyor.ci.run.job_log import JobLog
from conveyor.ci.run.masking import Masker
from conveyor.ci.run.records import PipelineRecorder
from conveyor.ci.run.reports import TestReport
from conveyor.ci.run.resource_groups import resource_lock
from conveyor.ci.run.results import AttemptStatus, JobResult
from conveyor.ci.select.outcome import allowed_failure, coverage_of, should_retry
from conveyor.ci.select.variables import expand
from conveyor.errors import JobSetupError
from conveyor.model.pipeline import JobRun


@dataclass(frozen=True)
class _Ended:
    """How the script ended: status, exit code, GitLab's failure reason, JUnit counts."""

    status: AttemptStatus
    exit_code: int | None
    reason: str | None
    tests: TestReport | None


class JobRunner:
    def __init__(
        self,
        pipeline_id: int,
        variables: JobVariables,
        *,
        files: JobFiles,
        executors: Executors,
        records: PipelineRecorder,
        cfg: RunConfig,
    ) -> None:
        self.pipeline_id = pipeline_id
        self.spec = variables.spec
        self.variables = variables
        self.files = files
        self.executors = executors
        self.records = records
        self.cfg = cfg
        self.masked = frozenset(v for v in cfg.masked if v)

    def run(self, job: JobRun, number: int) -> JobResult:
        """Attempt `number` of `job` (1 for the first). Never raises: a bug fails the job."""
        try:
            return self._attempt(job, number)
        except Exception as e:  # a bug must fail one job, not hang the pipeline
            self.records.job_output(
                job,
                self.records.job_id(job.name),
                f"conveyor: internal error: {e}\n{traceback.format_exc()}",
            )
            return JobResult(
                self.records.job_id(job.name) or 0, "failed", None, "unknown_failure", False, 0.0
            )

    def _attempt(self, job: JobRun, number: int) -> JobResult:
        js = self.spec.jobs[job.spec]
        job_id = self.records.start_job(self.pipeline_id, job, number)
        build = self.cfg.state_dir / "builds" / str(job_id)
        log_path = self.cfg.state_dir / "logs" / f"{job_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        executor = self.executors.name_for(js)
        self.records.job_running(
            job, job_id, log_path=str(log_path), executor=executor, attempt=number
        )
        dotenv = self.files.dotenv_for(job)
        env = self.variables.for_attempt(job, job_id, build / "ws", executor == "docker", dotenv)
        if js.environment is not None:
            self.records.job_environment(job_id, js.environment, env)
        attempt = Attempt(job, js, job_id, number, executor, build, env)
        show = partial(self.records.job_output, job, job_id)
        with JobLog(log_path, self.masked, show) as log:
            log.say(
                f"Running with Conveyor on {executor} executor (job {job_id}, attempt {number})"
            )
            ended = self._execute(attempt, log)
        failed = ended.status == "failed"
        allowed = failed and allowed_failure(job, ended.exit_code)
        result = JobResult(
            job_id,
            ended.status,
            ended.exit_code,
            ended.reason,
            allowed,
            0.0,
            ended.tests,
            coverage_of(js.coverage, log.text),
            failed and should_retry(js, number, ended.reason or "", ended.exit_code),
        )
        self.records.finish_job(result, allow_failure=allowed or job.allow_failure)
        if ended.tests is not None:
            self.records.job_test_failures(job_id, ended.tests, Masker(self.masked).mask_text)
        if not self.cfg.keep_workspaces:
            shutil.rmtree(build, ignore_errors=True)
        return replace(result, duration=time.monotonic() - t0)

    def _execute(self, attempt: Attempt, log: JobLog) -> _Ended:
        js, env = attempt.spec, attempt.env
        log.say("Preparing the workspace")
        self.files.prepare(attempt, log.say)
        executor = self.executors.make(attempt)
        group = js.resource_group and expand(js.resource_group, env)
        lock = (
            resource_lock(self.cfg.state_dir / "resource_groups", group, log.say)
            if group
            else contextlib.nullcontext()
        )
        with self.executors.running(attempt.job.name, executor), lock:
            try:
                code, reason = self._script(executor, attempt, log)
                status: AttemptStatus = "success" if reason is None else "failed"
                if executor.canceled:
                    status, reason = "canceled", "canceled"
                    log.say(f"Job canceled: {self.executors.cancel_reason}")
                if js.after_script:
                    self._after_script(executor, attempt, status, log)
            finally:
                executor.close(log.out)  # services go even when something above raised
        tests = self.files.collect(attempt, status == "success", log.say)
        if status == "success":
            log.say("Job succeeded")
        elif status == "failed":
            log.say(
                f"ERROR: Job failed: exit code {code}" if code is not None else "ERROR: Job failed"
            )
        return _Ended(status, code, reason, tests)

    def _script(
        self, executor: JobExecutor, attempt: Attempt, log: JobLog
    ) -> tuple[int | None, str | None]:
        """before_script + script in one shell: (exit code, GitLab failure reason or None)."""
        js = attempt.spec
        timeout = js.timeout or self.cfg.default_timeout
        try:
            executor.open()
            log.say("Executing the script")
            run = executor.run([*js.before_script, *js.script], attempt.env, timeout, log.out)
        except JobSetupError as e:
            log.say(f"ERROR: Preparation failed: {e}")
            return None, "runner_system_failure"
        if run.timed_out:
            log.say(f"ERROR: Job failed: execution took longer than {timeout:g}s")
            return run.exit_code, "job_execution_timeout"
        return run.exit_code, None if run.exit_code == 0 else "script_failure"

    def _after_script(
        self, executor: JobExecutor, attempt: Attempt, status: AttemptStatus, log: JobLog
    ) -> None:
        """after_script in a new shell, with CI_JOB_STATUS; its failure does not fail the job."""
        log.say("Running after_script")
        env = {**attempt.env, "CI_JOB_STATUS": status}
        try:
            executor.run(list(attempt.spec.after_script), env, AFTER_SCRIPT_TIMEOUT, log.out)
        except JobSetupError as e:
            log.say(f"WARNING: after_script could not run: {e}")
