"""Run a pipeline in-process and collect what happened: for the CI fixture tests and benches."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from conveyor.ci.run.config import RunConfig
from conveyor.ci.run.prepare import RegistryInfo, ci_state_dir, prepare
from conveyor.ci.run.results import JobResult, PipelineResult
from conveyor.ci.run.runner import PipelineRunner
from conveyor.model.pipeline import JobRun
from conveyor.store.db import Store
from conveyor.store.pipelines import JobRow, PipelineStore


@dataclass
class Event:
    t: float
    kind: Literal["start", "finish"]
    job: str
    status: str = ""


@dataclass
class Collected:
    """Everything a run reported: per-job output, start/finish events in order."""

    output: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def job_started(self, job: JobRun, job_id: int, executor: str) -> None:
        with self.lock:
            self.events.append(Event(time.monotonic(), "start", job.name))

    def job_output(self, job: JobRun, text: str) -> None:
        with self.lock:
            self.output[job.name] = self.output.get(job.name, "") + text

    def job_finished(self, job: JobRun, result: JobResult) -> None:
        with self.lock:
            self.events.append(Event(time.monotonic(), "finish", job.name, result.status))

    def started_before_finished(self, first: str, then: str) -> bool:
        """`then` started only after `first` finished (an ordering constraint)."""
        fin = [e.t for e in self.events if e.kind == "finish" and e.job == first]
        sta = [e.t for e in self.events if e.kind == "start" and e.job == then]
        return bool(fin and sta) and min(sta) >= max(fin)


@dataclass
class Run:
    result: PipelineResult
    collected: Collected
    jobs: list[JobRow]

    def status(self, job: str) -> str:
        rows = [j for j in self.jobs if j.name == job]
        return rows[-1].status if rows else "absent"

    def statuses(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for j in self.jobs:  # later attempts overwrite earlier ones
            out[j.name] = j.status
        return out


def run_pipeline(
    project_dir: Path,
    *,
    executor: Literal["shell", "docker"] = "shell",
    variables: Mapping[str, str] | None = None,
    play: Sequence[str] = (),
    ref: str | None = None,
    source: str = "push",
    only: Sequence[str] = (),
    registry: RegistryInfo | None = None,
    concurrency: int = 2,
    changed_files: Sequence[str] | None = None,
    file_name: str = ".gitlab-ci.yml",
) -> Run:
    """Load, select and run `project_dir/.gitlab-ci.yml` as `conveyor ci run` would."""
    store = Store.open(ci_state_dir(project_dir))
    records = PipelineStore(store)
    p = prepare(
        project_dir / file_name,
        pipeline_id=records.next_id(),
        cli_variables=dict(variables or {}),
        ref=ref,
        source=source,
        registry=registry,
        only=only,
        changed_files=changed_files,
    )
    cfg = RunConfig(
        project_dir=project_dir,
        state_dir=ci_state_dir(project_dir),
        executor=executor,
        cli_variables=dict(variables or {}),
        project_variables=p.project_variables,
        masked=p.masked,
        play=tuple(play),
        concurrency=concurrency,
        protected_ref=p.protected,
    )
    collected = Collected()
    result = PipelineRunner(cfg, store, collected).run(p.spec, p.selection, p.predefined)
    return Run(result, collected, records.jobs(result.pipeline_id))
