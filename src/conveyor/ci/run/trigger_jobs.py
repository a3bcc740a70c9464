"""A pipeline's trigger jobs: each creates its downstream pipeline (`conveyor.ci.run.downstream`)
and hands it to the runner, which runs it beside this pipeline, as GitLab does.

Without `strategy` the trigger job succeeds as soon as the pipeline is created; with
`strategy: depend` or `mirror` it waits for it and takes its status
(`conveyor.ci.select.downstream.trigger_status`). A pipeline that cannot be created fails the
trigger job with GitLab's failure reason; its log says why. Canceling this pipeline cancels its
downstream pipelines (GitLab cascades cancellation to them).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import PurePosixPath

from conveyor.ci.run.config import RunConfig
from conveyor.ci.run.downstream import Downstream, Upstream, plan_downstream
from conveyor.ci.run.handoff import JobFiles
from conveyor.ci.run.job_env import JobVariables
from conveyor.ci.run.job_log import JobLog
from conveyor.ci.run.records import PipelineRecorder
from conveyor.ci.run.results import JobResult, PipelineResult, ResultStatus
from conveyor.ci.select.downstream import (
    CREATION_FAILED,
    MAX_HIERARCHY_SIZE,
    TOO_MANY,
    passed_variables,
    trigger_status,
)
from conveyor.errors import DownstreamError
from conveyor.model.pipeline import JobRun, JobSpec, TriggerSpec
from conveyor.store.pipelines import CancelScope


@dataclass
class Hierarchy:
    """A pipeline and all its downstream pipelines, counted against GitLab's limit."""

    size: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> bool:
        with self.lock:
            if self.size >= MAX_HIERARCHY_SIZE:
                return False
            self.size += 1
            return True


@dataclass(frozen=True)
class DownstreamLink:
    """A downstream pipeline being run: its reserved record and where it comes from."""

    pipeline_id: int
    parent_pipeline_id: int
    trigger_job_id: int
    label: str  # its jobs' names in events: "trigger -> "
    child_depth: int
    hierarchy: Hierarchy


# Runs a downstream pipeline beside this one; the future holds its result.
StartDownstream = Callable[[Downstream, DownstreamLink], "Future[PipelineResult]"]


class TriggerJobs:
    def __init__(
        self,
        pipeline_id: int,
        variables: JobVariables,
        *,
        files: JobFiles,
        records: PipelineRecorder,
        cfg: RunConfig,
        upstream: Upstream,
        hierarchy: Hierarchy,
        start: StartDownstream,
    ) -> None:
        self.pipeline_id = pipeline_id
        self.spec = variables.spec
        self.variables = variables
        self.files = files
        self.records = records
        self.cfg = cfg
        self.upstream = upstream
        self.hierarchy = hierarchy
        self.start = start
        self.masked = frozenset(v for v in cfg.masked if v)
        self._lock = threading.Lock()
        self._started: dict[str, tuple[int, Future[PipelineResult]]] = {}  # by trigger job
        self._canceled: CancelScope | None = None

    def run(self, job: JobRun, number: int) -> JobResult:
        """Create `job`'s downstream pipeline (and, with a strategy, wait for it). Never
        raises: a bug fails the job."""
        try:
            return self._run(job, number)
        except Exception as e:  # a bug must fail one job, not hang the pipeline
            job_id = self.records.job_id(job.name) or 0
            trace = traceback.format_exc()
            self.records.job_output(job, job_id, f"conveyor: internal error: {e}\n{trace}")
            return JobResult(job_id, "failed", None, "unknown_failure", False, 0.0)

    def cancel(self, scope: CancelScope) -> None:
        """This pipeline is canceled (or its interruptible jobs are): so are the downstream
        pipelines its trigger jobs created, with the same scope."""
        with self._lock:
            self._canceled = scope if self._canceled != "all" else "all"
            running = [pid for pid, future in self._started.values() if not future.done()]
        for pid in running:
            self.records.request_cancel(pid, scope)

    def results(self) -> dict[str, PipelineResult]:
        """The downstream pipelines that ran, by trigger job (call once they all ended)."""
        with self._lock:
            started = dict(self._started)
        return {
            name: future.result()
            for name, (_, future) in started.items()
            if future.done() and future.exception() is None
        }

    # --- one trigger job -----------------------------------------------------------------------

    def _run(self, job: JobRun, number: int) -> JobResult:
        js = self.spec.jobs[job.spec]
        assert js.trigger is not None, f"{job.name} is not a trigger job"
        t0 = time.monotonic()
        job_id = self.records.start_job(self.pipeline_id, job, number)
        log_path = self.cfg.state_dir / "logs" / f"{job_id}.log"
        self.records.job_running(
            job, job_id, log_path=str(log_path), executor="trigger", attempt=number
        )
        dotenv = self.files.dotenv_for(job)
        env = self.variables.for_attempt(job, job_id, self.cfg.project_dir, False, dotenv)
        if js.environment is not None:
            self.records.job_environment(job_id, js.environment, env)
        show = partial(self.records.job_output, job, job_id)
        with JobLog(log_path, self.masked, show) as log:
            status, reason = self._trigger(job, js, js.trigger, job_id, env, log)
        allowed = status == "failed" and job.allow_failure
        result = JobResult(job_id, status, None, reason, allowed, 0.0)
        self.records.finish_job(result, allow_failure=allowed or job.allow_failure)
        return replace(result, duration=time.monotonic() - t0)

    def _trigger(
        self,
        job: JobRun,
        js: JobSpec,
        trigger: TriggerSpec,
        job_id: int,
        env: dict[str, str],
        log: JobLog,
    ) -> tuple[ResultStatus, str | None]:
        passed = passed_variables(
            trigger, self.variables.yaml_variables(job, env), self.cfg.cli_variables
        )
        source = "parent_pipeline" if trigger.include else "pipeline"
        if not self.hierarchy.admit():
            log.say(f"ERROR: more than {MAX_HIERARCHY_SIZE} pipelines in this hierarchy")
            return "failed", TOO_MANY
        pid = self.records.reserve_downstream(self.pipeline_id, job_id, source)
        checkout = self.cfg.state_dir / "builds" / f"downstream-{pid}"
        try:
            plan = plan_downstream(
                self.upstream,
                js,
                env,
                passed,
                pid,
                artifact=partial(self._artifact, js),
                checkout=checkout,
            )
        except DownstreamError as e:
            self.records.discard(pid)
            log.say(f"ERROR: Downstream pipeline cannot be created: {e}")
            return "failed", e.reason
        except BaseException:
            self.records.discard(pid)  # a bug: `run` reports it; no half-made pipeline stays
            raise
        jobs = len(plan.selection.jobs)
        log.say(f"Created {plan.kind} pipeline #{pid} from {plan.source} ({jobs} jobs)")
        if plan.variables:
            log.say(f"  passing {', '.join(sorted(plan.variables))}")
        for warning in plan.spec.warnings:  # what GitLab accepts, said as ci run says it
            log.say(f"warning: {warning}")
        link = DownstreamLink(
            pid,
            self.pipeline_id,
            job_id,
            f"{self.records.label}{job.name} -> ",
            plan.child_depth,
            self.hierarchy,
        )
        future = self.start(plan, link)
        with self._lock:
            self._started[job.name] = (pid, future)
            canceled = self._canceled
        if canceled is not None:  # this pipeline was canceled while the trigger job ran
            self.records.request_cancel(pid, canceled)
        if trigger.strategy is None:
            log.say("The trigger job succeeds once the pipeline exists (no strategy: depend)")
            return "success", None
        log.say(f"strategy {trigger.strategy}: waiting for pipeline #{pid}")
        child = future.result()
        status = trigger_status(trigger.strategy, child.status)
        with self._lock:
            if self._canceled == "all" or (self._canceled and job.interruptible):
                status = "canceled"
        log.say(f"Pipeline #{pid} {child.status}: the trigger job is {status}")
        return status, None

    def _artifact(self, js: JobSpec, job: str, path: str) -> str:
        """A file among the artifacts of `job` in this pipeline (a dynamic child pipeline's
        configuration)."""
        wanted = PurePosixPath(path.lstrip("/")).as_posix().removeprefix("./")
        job_id = self.records.job_id(job)
        manifest = self.files.artifacts.get(str(job_id)) if job_id is not None else None
        entry = manifest.snapshot.entries.get(wanted) if manifest is not None else None
        if entry is None or entry.digest is None:
            ran = "did not keep it" if job_id is not None else "has not run in this pipeline"
            raise DownstreamError(
                CREATION_FAILED,
                f"{js.where.file}:{js.where.line}: {js.name}.trigger.include: artifact {path} "
                f"not found: job '{job}' {ran} (it must run before the trigger job and list "
                "the file in artifacts:paths)",
            )
        with self.files.artifacts.blobs.open(entry.digest) as f:
            return f.read().decode("utf-8", errors="replace")
