"""Which jobs of a pipeline may start now: GitLab's stage and `needs` rules as a pure state
machine. The runner asks `ready()`, starts those jobs, and reports each result with `finish()`.

GitLab's semantics encoded here:
- without `needs`, a job waits for every job of every earlier stage; with `needs`, only for
  those (`needs: []` starts at once);
- `when: on_success` runs when all awaited jobs succeeded (a failure with allow_failure counts
  as success), `on_failure` when at least one failed, `always` regardless; otherwise the job
  is skipped;
- `when: manual` waits for someone to play it; a manual job that may fail (the default for
  manual jobs without rules) does not block later stages, a blocking one does;
- `when: delayed` waits `start_in` seconds once its prerequisites are met;
- a job never starts twice at once with another job of the same `resource_group`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from conveyor.model.pipeline import JobRun, JobStatus

DONE: frozenset[str] = frozenset({"success", "failed", "canceled", "skipped"})


@dataclass
class JobState:
    job: JobRun
    status: JobStatus = "created"
    allowed_failure: bool = False  # failed, but allow_failure (or its exit codes) said fine
    not_before: float | None = None  # delayed jobs: monotonic time they may start
    played: bool = False  # a manual job someone asked to run


@dataclass
class Schedule:
    jobs: Sequence[JobRun]
    stages: Sequence[str]
    play: Iterable[str] = ()  # manual jobs to run (`ci run --manual JOB`)
    groups: Mapping[str, str] = field(default_factory=dict)  # job name -> resource_group
    states: dict[str, JobState] = field(init=False)

    def __post_init__(self) -> None:
        self.states = {j.name: JobState(j) for j in self.jobs}
        for name in self.play:
            if name in self.states:
                self.states[name].played = True
        self._stage_index = {s: i for i, s in enumerate(self.stages)}

    # --- queries -------------------------------------------------------------------------

    def _awaited(self, job: JobRun) -> list[JobState]:
        if job.needs is not None:
            return [self.states[n.job] for n in job.needs if n.job in self.states]
        mine = self._stage_index.get(job.stage, 0)
        return [s for s in self.states.values() if self._stage_index.get(s.job.stage, 0) < mine]

    def _settled(self, s: JobState) -> bool:
        """Finished, or a manual job that does not hold up what comes after it."""
        if s.status in DONE:
            return True
        return s.status == "manual" and s.job.allow_failure

    def _outcome_ok(self, awaited: list[JobState]) -> bool:
        return all(
            s.status in ("success", "skipped", "manual") or s.allowed_failure for s in awaited
        )

    @staticmethod
    def _did_not_run(s: JobState) -> bool:
        """Skipped, or a manual job that may fail and was not played (GitLab: `ignored`)."""
        return s.status == "skipped" or (s.status == "manual" and s.job.allow_failure)

    def ready(self, now: float, busy_groups: Iterable[str] = ()) -> list[JobRun]:
        """Jobs to start now, in definition order; advances skipped/manual/delayed states."""
        groups = set(busy_groups)
        out: list[JobRun] = []
        changed = True
        while changed:  # skipping a job can settle others; iterate to a fixed point
            changed = False
            for s in self.states.values():
                if s.status not in {"created", "scheduled"}:
                    continue
                awaited = self._awaited(s.job)
                if not all(self._settled(a) for a in awaited):
                    continue
                decision = self._decide(s, awaited, now)
                if decision == "start":
                    group = self.resource_group(s.job)
                    if group is not None and group in groups:
                        continue
                    if group is not None:
                        groups.add(group)
                    s.status = "pending"
                    out.append(s.job)
                elif decision != s.status:
                    s.status = decision
                    changed = True
        return out

    def _decide(
        self, s: JobState, awaited: list[JobState], now: float
    ) -> Literal["start", "skipped", "manual", "scheduled"]:
        ok = self._outcome_ok(awaited)
        failed = any(a.status == "failed" and not a.allowed_failure for a in awaited)
        when = s.job.when
        if s.job.needs is not None and any(self._did_not_run(a) for a in awaited):
            # GitLab's composite status of a job's needs (dag) is `skipped` when one of them
            # does not run at all; only `when: always` accepts a skipped status.
            return "start" if when == "always" else "skipped"
        if when == "on_success" and not ok:
            return "skipped"
        if when == "on_failure" and not failed:
            return "skipped"
        if when == "manual":
            if not ok:
                return "skipped"
            return "start" if s.played else "manual"
        if when == "delayed":
            if not ok:
                return "skipped"
            if s.not_before is None:
                s.not_before = now + (s.job.start_in or 0.0)
            return "start" if now >= s.not_before else "scheduled"
        return "start"

    def resource_group(self, job: JobRun) -> str | None:
        return self.groups.get(job.name)

    def next_wakeup(self) -> float | None:
        """When a delayed job becomes due (monotonic), for the runner's sleep."""
        times = [s.not_before for s in self.states.values() if s.status == "scheduled"]
        return min((t for t in times if t is not None), default=None)

    def finished(self) -> bool:
        return all(
            s.status in DONE or s.status == "manual" for s in self.states.values()
        ) and not any(s.status in ("pending", "running") for s in self.states.values())

    def blocked(self) -> bool:
        """A manual job that must run before later jobs was not played."""
        return any(s.status == "manual" and not s.job.allow_failure for s in self.states.values())

    # --- updates -------------------------------------------------------------------------

    def start(self, name: str) -> None:
        self.states[name].status = "running"

    def finish(self, name: str, status: JobStatus, allowed_failure: bool = False) -> None:
        s = self.states[name]
        s.status = status
        s.allowed_failure = status == "failed" and allowed_failure

    def retry(self, name: str) -> None:
        """Run the job again (GitLab's retry): back to pending, results forgotten."""
        s = self.states[name]
        s.status = "pending"
        s.allowed_failure = False

    def cancel_pending(self, names: Collection[str] | None = None) -> None:
        """Jobs not started yet (of `names`, or all) are canceled; they never start."""
        for s in self.states.values():
            if s.status in ("created", "scheduled", "pending") and (
                names is None or s.job.name in names
            ):
                s.status = "canceled"

    def pipeline_status(self) -> str:
        """GitLab's pipeline status: the composite of its jobs' (Gitlab::Ci::Status::Composite),
        where an allowed failure counts as `success_with_warnings` and a manual job that may
        fail as `ignored`. Blocked by a manual job wins over a failure: the pipeline waits."""
        kinds: set[str] = set()
        for s in self.states.values():
            if s.status == "failed" and s.allowed_failure:
                kinds.add("success_with_warnings")
            elif s.status == "manual" and s.job.allow_failure:
                kinds.add("ignored")
            else:
                kinds.add(s.status)
        if not kinds:
            return "success"
        for allowed, status in _ONLY_OF:
            if kinds <= allowed:
                return status
        for present, status in _ANY_OF:
            if present in kinds:
                return status
        return "failed"


# Gitlab::Ci::Status::Composite#status, in its order: "only these kinds" rules first...
_QUIET = frozenset({"success_with_warnings", "ignored"})
_ONLY_OF: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"skipped", "ignored"}), "skipped"),
    (_QUIET | {"success", "skipped"}, "success"),
    (_QUIET | {"created"}, "created"),
    (_QUIET | {"canceled", "success", "skipped"}, "canceled"),
    (_QUIET | {"pending", "created", "skipped"}, "pending"),
)
# ... then "any of this kind" rules (`manual` is what GitLab shows as "blocked").
_ANY_OF: tuple[tuple[str, str], ...] = (
    ("running", "running"),
    ("pending", "running"),
    ("manual", "manual"),
    ("scheduled", "scheduled"),
    ("created", "running"),
)
