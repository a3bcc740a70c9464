"""Running one job of a finished pipeline again, as GitLab does: retry (a failed or canceled job
runs as a new attempt) and play (a manual job not run yet). Pure decisions over the stored jobs'
statuses; the runner (`PipelineRunner.rerun`) does the running.

GitLab's semantics kept here:
- only the latest attempt of a job can be retried, and only when it failed or was canceled
  (`Ci::Build#retryable?` also allows a successful job; Conveyor does not, see docs/ci.md);
  only a job waiting as `manual` can be played; neither while the pipeline still runs;
- after the job is requeued, the jobs that depend on it (a later stage for a job without
  `needs`, or a `needs` on it, transitively) that were `skipped` are processed again
  (Ci::AfterRequeueJobService / ResetSkippedJobsService): they run if they now can;
- the pipeline's status is then the composite of its jobs' latest attempts again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from conveyor.ci.select.schedule import Schedule
from conveyor.model.pipeline import JobStatus

RerunKind = Literal["retry", "play"]
# `interrupted`: the server stopped while it ran (Conveyor's own status; GitLab has none)
RETRYABLE: frozenset[str] = frozenset({"failed", "canceled", "interrupted"})
_KNOWN: frozenset[str] = frozenset(
    {"created", "pending", "running", "success", "failed", "canceled", "skipped", "manual"}
)
_BUSY: frozenset[str] = frozenset({"created", "pending", "running"})


@dataclass(frozen=True)
class StoredJob:
    """What the rerun needs of a job's latest stored attempt."""

    id: int
    name: str
    status: str
    allow_failure: bool
    attempt: int
    started: bool  # it ran (a skipped or manual job never did: its record is reused)


def refusal(
    kind: RerunKind, pipeline_status: str, job: StoredJob, latest: Mapping[str, StoredJob]
) -> str | None:
    """Why `job` cannot be retried/played now, or None. `latest` is each job name's latest
    attempt in the pipeline."""
    if pipeline_status in _BUSY:
        return f"its pipeline is {pipeline_status}: wait for it to finish, or cancel it"
    newest = latest.get(job.name)
    if newest is None or newest.id != job.id:
        later = f" (#{newest.id} is)" if newest is not None else ""
        return f"job #{job.id} is not the latest attempt of {job.name}{later}"
    if kind == "retry" and job.status not in RETRYABLE:
        hint = ": play it instead" if job.status == "manual" else ""
        done = "only a failed, canceled or interrupted job is retried"
        return f"job {job.name} is {job.status}; {done}{hint}"
    if kind == "play" and job.status != "manual":
        return f"job {job.name} is {job.status}, not a manual job waiting to be played"
    return None


def dependents(schedule: Schedule, name: str) -> set[str]:
    """Jobs that wait for `name`, directly or through others: a later stage (jobs without
    `needs`) or a `needs` on it (GitLab's stage- and needs-dependent jobs)."""
    order = {s: i for i, s in enumerate(schedule.stages)}
    found: set[str] = set()
    todo = [name]
    while todo:
        current = schedule.states[todo.pop()].job
        for s in schedule.states.values():
            job = s.job
            if job.name in found or job.name == name:
                continue
            if job.needs is not None:
                waits = any(n.job == current.name for n in job.needs)
            else:
                waits = order.get(job.stage, 0) > order.get(current.stage, 0)
            if waits:
                found.add(job.name)
                todo.append(job.name)
    return found


def seed(schedule: Schedule, latest: Mapping[str, StoredJob], target: str) -> set[str]:
    """Put the stored outcome into `schedule`, requeue `target` (played, so a manual job runs)
    and send its skipped dependents back to `created`. Returns the names requeued."""
    for name, s in schedule.states.items():
        row = latest.get(name)
        status: JobStatus = "skipped"
        if row is not None:
            status = row.status if row.status in _KNOWN else "canceled"  # type: ignore[assignment]
        s.status = status
        s.allowed_failure = status == "failed" and row is not None and row.allow_failure
    again = {target}
    schedule.states[target].status = "created"
    schedule.states[target].allowed_failure = False
    schedule.states[target].played = True
    for name in dependents(schedule, target):
        s = schedule.states[name]
        if s.status == "skipped":
            s.status = "created"
            again.add(name)
    return again
