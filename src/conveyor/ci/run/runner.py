"""Runs one pipeline: schedules its jobs (`conveyor.ci.select.schedule`), runs each attempt
with a `JobRunner` (a trigger job with `TriggerJobs`) on a pool of `concurrency` threads,
honours `resource_group` and GitLab's auto-cancel, and records the outcome. The downstream
pipelines its trigger jobs create run beside it, each with a runner of its own.

Auto-cancel, as GitLab does it (`workflow:auto_cancel`):
- `on_new_commit`: a new branch pipeline asks older running pipelines of the branch to cancel
  (`PipelineRecorder.cancel_redundant`; the GitOps server asks the same when a newer commit
  arrives before its pipeline starts); the process running one sees the request in its
  record and cancels everything, or only its `interruptible` jobs;
- `on_job_failure: all`: a job that fails (not allowed to, with no retry left) cancels the rest
  of its pipeline;
- canceling a pipeline cancels its downstream pipelines with the same scope.

The collaborators: `JobVariables` (each job's variables), `JobFiles` (checkout, artifacts,
dotenv, caches), `Executors` (shell or docker, and cancel), `PipelineRecorder` (the records),
and the pure policies of `conveyor.ci.select.outcome` (allowed failure, retry, coverage).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace

from conveyor.ci.run.config import RunConfig
from conveyor.ci.run.downstream import Downstream, Upstream
from conveyor.ci.run.executors import Executors
from conveyor.ci.run.handoff import JobFiles
from conveyor.ci.run.job_env import JobVariables
from conveyor.ci.run.job_runner import JobRunner
from conveyor.ci.run.leftovers import store_labels
from conveyor.ci.run.prepare import project_state_dir
from conveyor.ci.run.records import PipelineRecorder
from conveyor.ci.run.results import JobResult, PipelineResult
from conveyor.ci.run.trigger_jobs import DownstreamLink, Hierarchy, TriggerJobs
from conveyor.ci.select.rerun import StoredJob, seed
from conveyor.ci.select.rules import PipelineSelection
from conveyor.ci.select.schedule import Schedule
from conveyor.model.pipeline import JobRun, PipelineSpec
from conveyor.runtime.job_protocol import JobContainers
from conveyor.store.db import Store
from conveyor.store.pipelines import CancelScope
from conveyor.store.timeline import Timeline

REDUNDANT = "a newer pipeline or commit of this ref made it redundant"


class PipelineRunner:
    def __init__(
        self,
        cfg: RunConfig,
        store: Store,
        timeline: Timeline,
        containers: JobContainers | None = None,
        link: DownstreamLink | None = None,
    ) -> None:
        """Records go to `store`; progress is reported as `timeline` events (subscribe to
        them to watch). `containers` runs docker jobs (default: the local Docker Engine,
        reached when the first docker job starts). `link` makes this the run of a downstream
        pipeline a trigger job created (its record is reserved)."""
        self.cfg = cfg
        self.store = store
        self.containers = containers
        self.link = link
        self.records = PipelineRecorder(store, timeline, label=link.label if link else "")
        self.files = JobFiles(
            cfg.state_dir, cfg.project_dir, protected_ref=cfg.protected_ref, records=self.records
        )
        self.executors = Executors(
            cfg.executor,
            cfg.default_image,
            containers,
            host_env=cfg.host_env,
            labels=store_labels(store),
            on_process=self.records.job_process,
        )
        self._threads: list[threading.Thread] = []  # downstream pipelines running beside

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
        link = self.link
        pid = self.records.start_pipeline(
            spec,
            variables.predefined,
            self.cfg.executor,
            len(selection.jobs),
            selection.auto_cancel,
            reserved=link.pipeline_id if link else None,
        )
        # A downstream pipeline never cancels others: it goes with its parent (GitLab).
        if self.cfg.auto_cancel and link is None and predefined.get("CI_COMMIT_BRANCH"):
            self.records.cancel_redundant(
                predefined.get("CI_COMMIT_REF_NAME"),
                pipeline=pid,
                commit=predefined.get("CI_COMMIT_SHA") or None,
            )
        groups = {j.name: g for j in selection.jobs if (g := variables.resource_group(j))}
        schedule = Schedule(
            jobs=selection.jobs, stages=spec.stages, play=self.cfg.play, groups=groups
        )
        return self._execute(pid, spec, selection, variables, schedule, groups, t0)

    def rerun(
        self,
        pid: int,
        spec: PipelineSpec,
        selection: PipelineSelection,
        predefined: Mapping[str, str],
        target: str,
        latest: Mapping[str, StoredJob],
    ) -> PipelineResult:
        """Run job `target` of stored pipeline `pid` again (retry, or play a manual job), then
        the jobs depending on it that can now run; the pipeline's status is recomputed from
        every job's latest attempt. `latest` holds each job's latest stored attempt (only those
        jobs take part); the pipeline must already be marked running again
        (`PipelineRepository.resume`). `spec`, `selection` and `predefined` are the pipeline
        as prepared for its own commit and ref, with its id."""
        t0 = time.monotonic()
        jobs = [j for j in selection.jobs if j.name in latest]
        variables = JobVariables(
            spec,
            replace(selection, jobs=jobs),
            predefined,
            project=self.cfg.project_variables,
            pipeline=self.cfg.cli_variables,
            project_dir=self.cfg.project_dir,
        )
        groups = {j.name: g for j in jobs if (g := variables.resource_group(j))}
        schedule = Schedule(jobs=jobs, stages=spec.stages, groups=groups)
        seed(schedule, latest, target)
        self.records.resume(
            {name: row.id for name, row in latest.items()},
            {name: row.id for name, row in latest.items() if not row.started},
        )
        self.records.timeline = self.records.timeline.bind(
            pipeline=pid, commit=predefined.get("CI_COMMIT_SHA") or None
        )
        self.files.restore_dotenv(spec, jobs, {n: r.id for n, r in latest.items()})
        return self._execute(
            pid, spec, replace(selection, jobs=jobs), variables, schedule, groups, t0,
            first={target: latest[target].attempt if latest[target].started else 0},
        )  # fmt: skip

    def _execute(
        self,
        pid: int,
        spec: PipelineSpec,
        selection: PipelineSelection,
        variables: JobVariables,
        schedule: Schedule,
        groups: Mapping[str, str],
        t0: float,
        first: Mapping[str, int] | None = None,
    ) -> PipelineResult:
        """Run what `schedule` makes ready until the pipeline is done, and record it. `first`:
        attempts already made, per job (a retry's attempt number follows them)."""
        link = self.link
        self.files.begin(spec, selection.jobs)
        jobs = JobRunner(
            pid,
            variables,
            files=self.files,
            executors=self.executors,
            records=self.records,
            cfg=self.cfg,
        )
        triggers = TriggerJobs(
            pid,
            variables,
            files=self.files,
            records=self.records,
            cfg=self.cfg,
            upstream=Upstream(
                spec=spec,
                predefined=variables.predefined,
                project_dir=self.cfg.project_dir,
                context=self.cfg.context,
                project_variables=self.cfg.project_variables,
                child_depth=link.child_depth if link else 0,
            ),
            hierarchy=link.hierarchy if link else Hierarchy(),
            start=self._start_downstream,
        )

        def run_job(job: JobRun, attempt: int) -> JobResult:
            is_trigger = spec.jobs[job.spec].trigger is not None
            return (triggers.run if is_trigger else jobs.run)(job, attempt)

        on_failure = selection.auto_cancel.on_job_failure == "all"
        results = self._dispatch(pid, schedule, groups, run_job, triggers, on_failure, first)
        self.executors.wait_for_cleanup()
        status, tests = self.records.finish_pipeline(pid, schedule, results)
        # Downstream pipelines without `strategy` may outlive this one, as on GitLab; the
        # command that runs them ends with the last of them.
        for thread in self._threads:
            thread.join()
        return PipelineResult(
            pid, status, time.monotonic() - t0, results, tests, triggers.results()
        )

    def _dispatch(
        self,
        pid: int,
        schedule: Schedule,
        groups: Mapping[str, str],
        run_job: Callable[[JobRun, int], JobResult],
        triggers: TriggerJobs,
        cancel_on_failure: bool,
        first: Mapping[str, int] | None = None,
    ) -> dict[str, JobResult]:
        """Start what the schedule makes ready, up to `concurrency` at once, until nothing is
        left to start or wait for; retried attempts go back in the queue."""
        concurrency = max(1, self.cfg.concurrency)
        results: dict[str, JobResult] = {}
        attempts: dict[str, int] = dict(first or {})
        queue: deque[JobRun] = deque()
        running: dict[Future[JobResult], JobRun] = {}
        canceled: CancelScope | None = None  # what was canceled so far
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while True:
                busy = {groups[j.name] for j in [*running.values(), *queue] if j.name in groups}
                queue.extend(schedule.ready(time.monotonic(), busy_groups=busy))
                while queue and len(running) < self.cfg.concurrency:
                    job = queue.popleft()
                    attempts[job.name] = attempts.get(job.name, 0) + 1
                    schedule.start(job.name)
                    running[pool.submit(run_job, job, attempts[job.name])] = job
                if not running:
                    wake = schedule.next_wakeup()
                    if wake is None:
                        return results
                    time.sleep(max(0.0, min(wake - time.monotonic(), 1.0)))
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED, timeout=0.5)
                asked = self.records.cancel_request(pid)
                if asked is not None and canceled not in ("all", asked):
                    reason = REDUNDANT if self.link is None else "its parent pipeline was canceled"
                    canceled = self._cancel(schedule, queue, triggers, asked, reason)
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
                    failed = res.status == "failed" and not res.allowed_failure
                    if failed and cancel_on_failure and canceled != "all":
                        self.records.canceled_on_failure(pid, job)
                        reason = f"{job.name} failed (workflow:auto_cancel:on_job_failure: all)"
                        canceled = self._cancel(schedule, queue, triggers, "all", reason)

    def _cancel(
        self,
        schedule: Schedule,
        queue: deque[JobRun],
        triggers: TriggerJobs,
        scope: CancelScope,
        reason: str,
    ) -> CancelScope:
        """Cancel this pipeline (`all`: nothing new starts, running jobs are stopped) or only
        its `interruptible` jobs, and its downstream pipelines likewise."""
        if scope == "all":
            schedule.cancel_pending()
            queue.clear()
            self.executors.cancel_all(reason)
        else:
            names = {s.job.name for s in schedule.states.values() if s.job.interruptible}
            schedule.cancel_pending(names)
            for job in [j for j in queue if j.name in names]:
                queue.remove(job)
            self.executors.cancel(names, reason)
        triggers.cancel(scope)
        return scope

    def _start_downstream(self, plan: Downstream, link: DownstreamLink) -> Future[PipelineResult]:
        """Run a downstream pipeline beside this one, with a runner of its own (a child in
        this project's state; another project's in a state directory of its own)."""
        state_dir = self.cfg.state_dir
        if plan.kind == "multi-project":
            state_dir = project_state_dir(state_dir, plan.project or "project")
        cfg = replace(
            self.cfg,
            project_dir=plan.project_dir,
            state_dir=state_dir,
            cli_variables=plan.variables,
            project_variables=plan.project_variables,
            context=plan.context,
            auto_cancel=False,
        )
        future: Future[PipelineResult] = Future()
        timeline = self.records.timeline

        def run() -> None:
            try:
                runner = PipelineRunner(cfg, self.store, timeline, self.containers, link)
                future.set_result(runner.run(plan.spec, plan.selection, plan.predefined))
            except BaseException as e:  # the trigger job reports it; the record says failed
                self.store.pipelines.finish(link.pipeline_id, "failed", {}, None)
                future.set_exception(e)
            finally:
                if plan.kind == "multi-project" and not self.cfg.keep_workspaces:
                    shutil.rmtree(plan.project_dir, ignore_errors=True)

        thread = threading.Thread(target=run, name=f"pipeline-{link.pipeline_id}")
        self._threads.append(thread)
        thread.start()
        return future
