"""Everything the runner records and reports about a pipeline and its jobs: the rows in the
project's store, and the timeline events (pipeline.started, job.started, job.output,
job.finished, pipeline.finished) that the CLI renders live. One place that knows the store's
calls and the id of each job's latest attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from conveyor.ci.run.reports import TestReport
from conveyor.ci.run.results import JobResult, sum_tests, tests_json
from conveyor.ci.select.schedule import Schedule
from conveyor.ci.select.variables import expand
from conveyor.host import process_groups
from conveyor.model.pipeline import AutoCancelSpec, EnvironmentSpec, JobRun, PipelineSpec
from conveyor.store.db import Store
from conveyor.store.pipelines import CancelScope, JobRow, PipelineRow, TestFailure
from conveyor.store.timeline import Timeline

# A report may hold thousands of failures: the first ones are kept, clipped (counts stay exact).
FAILURES_KEPT = 100
MESSAGE_KEPT = 2000  # characters of a failure's message


RedundantAction = Literal["canceled", "interruptible", "kept"]


@dataclass(frozen=True)
class Redundant:
    """What auto-cancel did with one redundant pipeline: `canceled` it, canceled its
    `interruptible` jobs, or `kept` it running (`on_new_commit: none`, or a started job that
    is not interruptible)."""

    pipeline: int
    action: RedundantAction
    # Its started jobs that are not interruptible (what kept it, unless `on_new_commit: none`).
    not_interruptible: tuple[str, ...] = ()


class PipelineRecorder:
    def __init__(self, store: Store, timeline: Timeline, label: str = "") -> None:
        """`label` prefixes job names in events: a downstream pipeline's jobs are shown as
        `trigger -> job`."""
        self.pipelines = store.pipelines
        self.jobs = store.jobs
        self.artifacts = store.artifacts
        self.timeline = timeline
        self.label = label
        self._lock = threading.Lock()
        self._job_ids: dict[str, int] = {}  # JobRun name -> id of its latest attempt
        # A rerun (retry/play) of a stored pipeline: records of jobs that never started
        # (manual, skipped), reused when they run now, as GitLab runs the same job.
        self._unstarted: dict[str, int] = {}
        self._resumed = False

    def resume(self, latest: Mapping[str, int], unstarted: Mapping[str, int]) -> None:
        """Continue a stored pipeline: `latest` is each job name's latest attempt id (their
        artifacts are what later jobs receive), `unstarted` those that never ran."""
        with self._lock:
            self._job_ids = dict(latest)
            self._unstarted = dict(unstarted)
            self._resumed = True

    def job_id(self, name: str) -> int | None:
        """The id of the latest attempt of the job named `name`, if it started."""
        with self._lock:
            return self._job_ids.get(name)

    # --- the pipeline ----------------------------------------------------------------------

    def start_pipeline(
        self,
        spec: PipelineSpec,
        predefined: Mapping[str, str],
        executor: str,
        jobs: int,
        auto_cancel: AutoCancelSpec,
        reserved: int | None = None,
    ) -> int:
        """Record a running pipeline of `jobs` jobs (a new one, or the downstream pipeline
        `reserved` for it) and announce it."""
        ref = predefined.get("CI_COMMIT_REF_NAME")
        sha = predefined.get("CI_COMMIT_SHA")
        source = predefined.get("CI_PIPELINE_SOURCE", "push")
        pid = reserved or self.pipelines.create(ref, sha, source, spec.file, executor)
        self.pipelines.start(
            pid,
            ref=ref,
            sha=sha,
            source=source,
            file=spec.file,
            executor=executor,
            on_new_commit=auto_cancel.on_new_commit or "conservative",
            on_job_failure=auto_cancel.on_job_failure or "none",
        )
        self.timeline = self.timeline.bind(pipeline=pid, commit=sha or None)
        self.timeline.emit(
            "pipeline.started",
            f"pipeline #{pid} for {ref or 'no ref'}",
            data={
                "ref": ref,
                "source": source,
                "short_sha": predefined.get("CI_COMMIT_SHORT_SHA"),
                "jobs": jobs,
                "label": self.label,
            },
        )
        return pid

    def reserve_downstream(self, parent: int, trigger_job: int, source: str) -> int:
        """The record of a downstream pipeline about to be created (its id is one of its
        predefined variables); `start_pipeline` fills it in, `discard` drops it."""
        return self.pipelines.create(
            None, None, source, "", "", status="created", parent=parent, trigger_job=trigger_job
        )

    def discard(self, pid: int) -> None:
        self.pipelines.discard(pid)

    def cancel_redundant(
        self, ref: str | None, *, pipeline: int | None = None, commit: str | None = None
    ) -> list[Redundant]:
        """GitLab's auto-cancel of redundant pipelines. What is newer: a new pipeline of the
        branch (`pipeline`; each older running pipeline is redundant), or a newer commit of it
        that no pipeline runs yet (`commit` alone: each running pipeline of another commit;
        the GitOps server when a push arrives while a pipeline runs). `commit` is recorded as
        what superseded each pipeline of another commit it cancels. Each redundant pipeline is
        handled as its own `workflow:auto_cancel:on_new_commit` says: `conservative` cancels it
        unless a started job of it (or of its downstream pipelines) is not `interruptible`,
        `interruptible` cancels only its interruptible jobs, `none` leaves it alone. Returns
        what was decided for each."""
        if pipeline is not None:
            newer = f"#{pipeline} runs a newer commit"
        elif commit is not None:
            newer = f"commit {commit[:12]} is newer"
        else:
            raise ValueError("cancel_redundant needs the newer pipeline or the newer commit")
        found = self.pipelines.running_for_ref(
            ref, newer_than=pipeline, other_than_sha=commit if pipeline is None else None
        )
        decided: list[Redundant] = []
        for old in found:
            mode = old.auto_cancel_on_new_commit
            # A pipeline run again for its own commit is redundant, not superseded.
            by = commit if commit != old.sha else None
            kept = [j.name for j in self._started_jobs(old) if not j.interruptible]
            if mode == "interruptible":
                self.pipelines.request_cancel(old.id, "interruptible", superseded_by=by)
                message = f"pipeline #{old.id}: its interruptible jobs are canceled"
                decided.append(Redundant(old.id, "interruptible", tuple(kept)))
            elif mode == "conservative" and not kept:
                self.pipelines.request_cancel(old.id, superseded_by=by)
                message = f"pipeline #{old.id} is redundant"
                decided.append(Redundant(old.id, "canceled"))
            else:  # `none`, or a started job is not interruptible
                decided.append(Redundant(old.id, "kept", tuple(kept) if mode != "none" else ()))
                continue
            data = {"scope": "interruptible" if mode == "interruptible" else "all"}
            if by is not None:
                data["superseded_by"] = by
            self.timeline.emit(
                "pipeline.canceled",
                f"{message}: {newer} of {ref}",
                pipeline=old.id,
                data=data,
            )
        return decided

    def _started_jobs(self, pipeline: PipelineRow) -> list[JobRow]:
        started = [j for j in self.jobs.of(pipeline.id) if j.started_at is not None]
        for child in self.pipelines.downstream(pipeline.id):
            started += self._started_jobs(child)
        return started

    def cancel_request(self, pid: int) -> CancelScope | None:
        """What a pending request to cancel pipeline `pid` covers, if one was made."""
        return self.pipelines.cancel_request(pid)

    def request_cancel(self, pid: int, scope: CancelScope) -> None:
        self.pipelines.request_cancel(pid, scope)

    def canceled_on_failure(self, pid: int, job: JobRun) -> None:
        """`on_job_failure: all`: `job` failed, the rest of the pipeline is canceled."""
        self.timeline.emit(
            "pipeline.canceled",
            f"pipeline #{pid}: {self.label}{job.name} failed, the pipeline is canceled "
            "(workflow:auto_cancel:on_job_failure: all)",
            pipeline=pid,
            data={"scope": "all", "job": self.label + job.name},
        )

    def finish_pipeline(
        self, pid: int, schedule: Schedule, results: Mapping[str, JobResult]
    ) -> tuple[str, dict[str, int]]:
        """Record the jobs that never ran and the pipeline's outcome: (status, test counts)."""
        for name, state in schedule.states.items():
            if name in results:
                continue
            if self._resumed:  # its record exists; a job that never ran may have moved on
                if name in self._unstarted:
                    self.jobs.update(self._unstarted[name], status=state.status)
                continue
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
        if self._resumed:  # the pipeline's counts are its jobs' latest attempts', all of them
            latest = self._latest_rows(pid)
            tests = _sum_counts(j.tests for j in latest)
            covs = [j.coverage for j in latest if j.coverage is not None]
        coverage = sum(covs) / len(covs) if covs else None
        self.pipelines.finish(pid, status, tests, coverage)
        row = self.pipelines.get(pid)
        data: dict[str, object] = {
            "status": status,
            "tests": tests,
            "seconds": round(row.duration or 0.0, 3) if row else None,
        }
        message = f"pipeline #{pid} {status}"
        ok = status in ("success", "manual", "skipped")
        newer = row.superseded_by if row is not None else None
        if status == "canceled" and newer:
            # Canceled because a newer commit made it redundant: news, not a failure.
            ok = True
            message += f": superseded by {newer[:12]}"
            data["superseded_by"] = newer
        self.timeline.emit("pipeline.finished", message, level="info" if ok else "error", data=data)
        return status, tests

    def _latest_rows(self, pid: int) -> list[JobRow]:
        latest: dict[str, JobRow] = {}
        for row in self.jobs.of(pid):  # by id: a later attempt replaces an earlier one
            latest[row.name] = row
        return list(latest.values())

    # --- one job attempt -------------------------------------------------------------------

    def start_job(self, pid: int, job: JobRun, attempt: int) -> int:
        """A new attempt of `job`, running; a retry points at the attempt before it. A job of
        a resumed pipeline that never ran keeps its record."""
        with self._lock:
            reused = self._unstarted.pop(job.name, None)
        if reused is not None:
            self.jobs.update(reused, status="running")
            return reused
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
        name = self.label + job.name
        self.timeline.emit(
            "job.started",
            name,
            job=job_id,
            data={"name": name, "stage": job.stage, "executor": executor, "attempt": attempt},
        )

    def job_process(self, job_id: int, pid: int) -> None:
        """A shell script of the job started as process group `pid` (kept with its leader's
        identity: a runner killed now leaves it running, the next start stops it)."""
        self.jobs.update(job_id, process_group=pid, process_start=process_groups.identity(pid))

    def job_output(self, job: JobRun, job_id: int | None, text: str) -> None:
        """A chunk of a job's (masked) output, for live display; its log file keeps it."""
        self.timeline.emit("job.output", text, job=job_id, data={"name": self.label + job.name})

    def job_finished(self, job: JobRun, result: JobResult) -> None:
        """Reported once the attempt is over and timed (recorded by `finish_job`)."""
        name = self.label + job.name
        self.timeline.emit(
            "job.finished",
            f"{name} {result.status}",
            level="error" if result.status == "failed" and not result.allowed_failure else "info",
            job=result.job_id,
            data={
                "name": name,
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


def _sum_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Stored JUnit counts added up (empty when no job had a report)."""
    total: dict[str, int] = {}
    for c in counts:
        for key, value in c.items():
            total[key] = total.get(key, 0) + value
    return total
