"""Run a pipeline in-process and collect what happened: for the CI fixture tests and benches."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from conveyor.ci.load.components import Catalog
from conveyor.ci.run.config import RunConfig
from conveyor.ci.run.prepare import RegistryInfo, ci_state_dir, ci_store, prepare
from conveyor.ci.run.results import PipelineResult
from conveyor.ci.run.runner import PipelineRunner
from conveyor.model.events import Event, Subject
from conveyor.store.db import Store
from conveyor.store.pipelines import JobRow, TestFailure
from conveyor.store.timeline import Timeline


@dataclass
class Seen:
    t: float
    kind: Literal["start", "finish"]
    job: str
    status: str = ""


@dataclass
class Collected:
    """Everything a run reported: per-job output, start/finish events in order."""

    output: dict[str, str] = field(default_factory=dict)
    events: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, e: Event) -> None:
        """A timeline subscriber."""
        name = str(e.data.get("name", ""))
        with self.lock:
            if e.kind == "job.started":
                self.events.append(Seen(time.monotonic(), "start", name))
            elif e.kind == "job.output":
                self.output[name] = self.output.get(name, "") + e.message
            elif e.kind == "job.finished":
                self.events.append(Seen(time.monotonic(), "finish", name, str(e.data["status"])))

    def started_before_finished(self, first: str, then: str) -> bool:
        """`then` started only after `first` finished (an ordering constraint)."""
        fin = [e.t for e in self.events if e.kind == "finish" and e.job == first]
        sta = [e.t for e in self.events if e.kind == "start" and e.job == then]
        return bool(fin and sta) and min(sta) >= max(fin)


@dataclass
class Run:
    result: PipelineResult
    collected: Collected
    jobs: list[JobRow]  # its downstream pipelines' jobs too, named `trigger -> job`
    test_failures: dict[str, list[TestFailure]] = field(default_factory=dict)  # by job name

    def status(self, job: str) -> str:
        rows = [j for j in self.jobs if j.name == job]
        return rows[-1].status if rows else "absent"

    def statuses(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for j in self.jobs:  # later attempts overwrite earlier ones
            out[j.name] = j.status
        return out


def all_jobs(store: Store, pipeline_id: int, prefix: str = "") -> list[JobRow]:
    """The jobs of a pipeline and of its downstream pipelines (`trigger -> job`), as the live
    output names them."""
    jobs = store.jobs.of(pipeline_id)
    out = [j.model_copy(update={"name": prefix + j.name}) for j in jobs]
    names = {j.id: j.name for j in jobs}
    for child in store.pipelines.downstream(pipeline_id):
        trigger = names.get(child.trigger_job_id or 0, "?")
        out += all_jobs(store, child.id, f"{prefix}{trigger} -> ")
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
    projects: Mapping[str, Path] | None = None,
    catalogs: Sequence[Catalog] = (),
    inputs: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Run:
    """Load, select and run `project_dir/.gitlab-ci.yml` as `conveyor ci run` would;
    `environ` is the caller's environment shell jobs start from (default: this process's)."""
    store = ci_store(project_dir)
    p = prepare(
        project_dir / file_name,
        pipeline_id=store.pipelines.next_id(),
        cli_variables=dict(variables or {}),
        ref=ref,
        source=source,
        registry=registry,
        only=only,
        changed_files=changed_files,
        projects=projects,
        catalogs=catalogs,
        inputs=inputs,
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
        context=p.context,
        host_env=environ,
    )
    collected = Collected()
    timeline = Timeline(Subject(project=store.project), store.events, "ci", [collected])
    result = PipelineRunner(cfg, store, timeline).run(p.spec, p.selection, p.predefined)
    jobs = all_jobs(store, result.pipeline_id)
    by_id: dict[int, list[TestFailure]] = {}
    for pid in sorted({result.pipeline_id, *(j.pipeline_id for j in jobs)}):
        by_id.update(store.jobs.test_failures(pid))
    latest = {j.name: j.id for j in jobs}  # a retry comes after the attempt it retries
    failures = {name: by_id.get(job_id, []) for name, job_id in latest.items()}
    return Run(result, collected, jobs, failures)
