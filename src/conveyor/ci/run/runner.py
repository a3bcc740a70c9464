"""Runs one pipeline: schedules its jobs (`conveyor.ci.select.schedule`), runs each attempt
with a `JobRunner` on a pool of `concurrency` threads, honours `resource_group` and GitLab's
auto-cancel, and records the outcome.

The collaborators: `JobVariables` (each job's variables), `JobFiles` (checkout, artifacts,
dotenv, caches), `Executors` (shell or docker, and cancel), `PipelineRecorder` (the records),
and the pure policies of `conveyor.ci.select.outcome` (allowed failure, retry, coverage).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from conveyor.ci.run.config import RunConfig
from conveyor.ci.run.executors import Executors
from conveyor.ci.run.handoff import JobFiles
from conveyor.ci.run.job_env import JobVariables
from conveyor.ci.run.job_runner import JobRunner
from conveyor.ci.run.records import PipelineRecorder
from conveyor.ci.run.results import JobResult, PipelineResult
from conveyor.ci.select.rules import PipelineSelection
from conveyor.ci.select.schedule import Schedule
from conveyor.model.pipeline import JobRun, PipelineSpec
from conveyor.runtime.job_protocol import JobContainers
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline


class PipelineRunner:
    def __init__(
        self,
        cfg: RunConfig,
        store: Store,
        timeline: Timeline,
        containers: JobContainers | None = None,
    ) -> None:
        """Records go to `store`; progress is reported as `timeline` events (subscribe to
        them to watch). `containers` runs docker jobs (default: the local Docker Engine,
        reached when the first docker job starts)."""
        self.cfg = cfg
        self.records = PipelineRecorder(store, timeline)
        self.files = JobFiles(
            cfg.state_dir, cfg.project_dir, protected_ref=cfg.protected_ref, records=self.records
        )
        self.executors = Executors(
            cfg.executor, cfg.default_image, containers, host_env=cfg.host_env
        )

    def run(
        self, spec: PipelineSpec, selection: PipelineSelection, predefined: Mapping[str, str]
    ) -> PipelineResult:
        t0 = time.monotonic()
        variables = JobVariables(
            spec,
            selection,
            predefined,
            project=self.cfg.project_variables,
            pipeline=self.cfg.cli_variables,
            project_dir=self.cfg.project_dir,
        )
        pid = self.records.start_pipeline(
            spec, variables.predefined, self.cfg.executor, len(selection.jobs)
        )
        if self.cfg.auto_cancel and predefined.get("CI_COMMIT_BRANCH"):
            self.records.cancel_redundant(predefined.get("CI_COMMIT_REF_NAME"), pid)
        groups = {j.name: g for j in selection.jobs if (g := variables.resource_group(j))}
        schedule = Schedule(
            jobs=selection.jobs, stages=spec.stages, play=self.cfg.play, groups=groups
        )
        self.files.begin(spec, selection.jobs)
        jobs = JobRunner(
            pid,
            variables,
            files=self.files,
            executors=self.executors,
            records=self.records,
            cfg=self.cfg,
        )
        results = self._dispatch(pid, schedule, groups, jobs)
        self.executors.wait_for_cleanup()
        status, tests = self.records.finish_pipeline(pid, schedule, results)
        return PipelineResult(pid, status, time.monotonic() - t0, results, tests)

    def _dispatch(
        self, pid: int, schedule: Schedule, groups: Mapping[str, str], jobs: JobRunner
    ) -> dict[str, JobResult]:
        """Start what the schedule makes ready, up to `concurrency` at once, until nothing is
        left to start or wait for; retried attempts go back in the queue."""
        concurrency = max(1, self.cfg.concurrency)
        results: dict[str, JobResult] = {}
        attempts: dict[str, int] = {}
        queue: deque[JobRun] = deque()
        running: dict[Future[JobResult], JobRun] = {}
        canceling = False
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while True:
                busy = {groups[j.name] for j in [*running.values(), *queue] if j.name in groups}
                queue.extend(schedule.ready(time.monotonic(), busy_groups=busy))
                while queue and len(running) < self.cfg.concurrency:
                    job = queue.popleft()
                    attempts[job.name] = attempts.get(job.name, 0) + 1
                    schedule.start(job.name)
                    running[pool.submit(jobs.run, job, attempts[job.name])] = job
                if not running:
                    wake = schedule.next_wakeup()
                    if wake is None:
                        return results
                    time.sleep(max(0.0, min(wake - time.monotonic(), 1.0)))
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED, timeout=0.5)
                if not canceling and self.records.cancel_requested(pid):
                    canceling = self._cancel_now(schedule, queue)
                for fut in done:
                    job = running.pop(fut)
                    res = fut.result()
                    results[job.name] = res
                    self.records.job_finished(job, res)
                    if res.retried:
                        schedule.retry(job.name)
                        queue.append(job)
                        continue
                    schedule.finish(job.name, res.status, allowed_failure=res.allowed_failure)

    def _cancel_now(self, schedule: Schedule, queue: deque[JobRun]) -> bool:
        """A newer pipeline of this ref made this one redundant (GitLab's auto-cancel):
        nothing new starts and running jobs are stopped."""
        schedule.cancel_pending()
        queue.clear()
        self.executors.cancel_all()
        return True
