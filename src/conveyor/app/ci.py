"""Use cases of `conveyor ci`: lint, graph, run, history, show, logs, artifacts, environments,
stop; and for the GitOps server: interrupt_unfinished, supersede.

Each takes the pipeline file (its directory is the project) and typed arguments, and returns a
typed result (`conveyor.app.ci_views`, whose `model_dump()` is the documented `--json`). A
pipeline that runs reports through the project's timeline: `run` and `stop` hand its events
(pipeline.note, pipeline.started, job.started/output/finished…) to the subscribers given.
Errors are ConveyorErrors; nothing here prints."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from conveyor.app.ci_views import (
    ArtifactEntry,
    ArtifactsView,
    EnvironmentsView,
    EnvironmentView,
    GraphDecision,
    GraphJob,
    GraphStage,
    GraphTrigger,
    GraphView,
    GraphWorkflow,
    InterruptedPipeline,
    JobArtifacts,
    JobEnvironment,
    JobLog,
    JobView,
    LintView,
    PipelineHistory,
    PipelineSummary,
    PipelineView,
    RunResult,
    TestFailureView,
)
from conveyor.ci.load.components import Catalog, parse_catalog
from conveyor.ci.run.artifacts import ArtifactManifest
from conveyor.ci.run.config import ExecutorName, RunConfig
from conveyor.ci.run.downstream import Upstream, describe, preview_downstream
from conveyor.ci.run.facts import git_facts
from conveyor.ci.run.job_env import JobVariables
from conveyor.ci.run.leftovers import LeftRunning, stop_left_running
from conveyor.ci.run.prepare import (
    Prepared,
    RegistryInfo,
    ci_state_dir,
    ci_store,
    kept_artifacts,
    prepare,
    registry_from_env,
)
from conveyor.ci.run.records import PipelineRecorder, Redundant
from conveyor.ci.run.runner import PipelineRunner
from conveyor.ci.select.matrix import instances
from conveyor.ci.select.rerun import RerunKind, StoredJob, refusal
from conveyor.ci.select.rules import PipelineSelection
from conveyor.ci.select.variables import slugify
from conveyor.errors import ConveyorError, DownstreamError
from conveyor.model.events import Subject
from conveyor.model.pipeline import JobRun
from conveyor.store.db import Store
from conveyor.store.pipelines import JobRow
from conveyor.store.timeline import Subscriber, Timeline

Executor = ExecutorName  # "shell" or "docker", for jobs not tagged `shell` or `docker`
V = TypeVar("V", bound=BaseModel)


def lint(
    file: Path,
    *,
    ref: str | None = None,
    source: str = "push",
    projects: Mapping[str, Path] | None = None,
    catalogs: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
) -> LintView:
    """Check the pipeline file: GitLab's schema, then meaning (stages, needs, cycles, scripts);
    a bad file raises a SpecError naming file:line."""
    p = _prepare_for_ref(file, ref, source, projects, catalogs, inputs)
    return LintView(
        definitions=len(p.spec.jobs),
        jobs=sum(len(instances(job)) for job in p.spec.jobs.values()),
        stages=len(p.spec.stages),
        selected=len(p.selection.jobs),
        ref=p.predefined.get("CI_COMMIT_REF_NAME"),
        source=source,
        empty_reason=p.selection.empty_reason,
        warnings=list(p.spec.warnings),
    )


def graph(
    file: Path,
    *,
    ref: str | None = None,
    source: str = "push",
    projects: Mapping[str, Path] | None = None,
    catalogs: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
) -> GraphView:
    """Stages, jobs and `needs` edges, and which jobs the rules keep for this ref; a trigger
    job shows the pipeline it would create."""
    p = _prepare_for_ref(file, ref, source, projects, catalogs, inputs)
    up = Upstream(
        spec=p.spec,
        predefined=p.predefined,
        project_dir=_file(file).parent,
        context=p.context,
        project_variables=p.project_variables,
    )
    with tempfile.TemporaryDirectory(prefix="conveyor-graph-") as scratch:
        return _graph(up, p.selection, {}, Path(scratch))


def _graph(
    up: Upstream, selection: PipelineSelection, pipeline_variables: Mapping[str, str], scratch: Path
) -> GraphView:
    """The graph of one pipeline, with the pipelines its trigger jobs would create."""
    variables = JobVariables(
        up.spec,
        selection,
        up.predefined,
        project=up.project_variables,
        pipeline=pipeline_variables,
        project_dir=up.project_dir,
    )
    return GraphView(
        ref=up.predefined.get("CI_COMMIT_REF_NAME"),
        source=up.predefined.get("CI_PIPELINE_SOURCE", "push"),
        workflow=GraphWorkflow(runs=selection.workflow_ok, reason=selection.workflow_reason),
        stages=[
            GraphStage(
                name=stage,
                jobs=[
                    GraphJob(
                        name=j.name,
                        when=j.when,
                        allow_failure=j.allow_failure,
                        needs=None if j.needs is None else [n.job for n in j.needs],
                        trigger=_graph_trigger(up, variables, j, scratch),
                    )
                    for j in selection.jobs
                    if j.stage == stage
                ],
            )
            for stage in up.spec.stages
        ],
        decisions=[
            GraphDecision(job=d.job, decision=d.decision, reason=d.reason)
            for d in selection.decisions
        ],
    )


def _graph_trigger(
    up: Upstream, variables: JobVariables, job: JobRun, scratch: Path
) -> GraphTrigger | None:
    trigger = up.spec.jobs[job.spec].trigger
    if trigger is None:
        return None
    kind, source = describe(trigger)
    shown = GraphTrigger(
        kind=kind, source=source, strategy=trigger.strategy, pipeline=None, note=None
    )
    generators = [str(e.get("job")) for e in trigger.include if "artifact" in e]
    if generators:
        note = f"generated by job {', '.join(generators)} when the pipeline runs"
        return shown.model_copy(update={"note": note})
    checkout = scratch / f"{len(list(scratch.iterdir()))}"
    try:
        plan = preview_downstream(up, variables, job, checkout)
    except DownstreamError as e:
        return shown.model_copy(update={"note": f"the trigger job would fail ({e.reason}): {e}"})
    below = Upstream(
        spec=plan.spec,
        predefined=plan.predefined,
        project_dir=plan.project_dir,
        context=plan.context,
        project_variables=plan.project_variables,
        child_depth=plan.child_depth,
    )
    pipeline = _graph(below, plan.selection, plan.variables, scratch)
    return shown.model_copy(update={"source": plan.source, "pipeline": pipeline})


def run(
    file: Path,
    *,
    jobs: Sequence[str] = (),
    executor: Executor = "docker",
    variables: Mapping[str, str] | None = None,
    manual: Sequence[str] = (),
    ref: str | None = None,
    source: str = "push",
    concurrency: int = 2,
    variables_file: Path | None = None,
    registry: bool = True,
    keep_workspaces: bool = False,
    projects: Mapping[str, Path] | None = None,
    subscribers: Sequence[Subscriber] = (),
    catalogs: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunResult:
    """Run the pipeline (or `jobs` and what they need). `variables` are pipeline variables
    (they override the YAML), `manual` the manual jobs to play. With `registry`, the host's
    registry is started for CI_REGISTRY*; a pipeline runs without it, after a pipeline.note.
    `catalogs` (`[GROUP/PROJECT=]PATH`) are where components are found, `inputs` the
    pipeline's inputs (text, read as the header declares them). `environ` is the caller's
    environment, which shell jobs start from (default: this process's)."""
    f = _file(file)
    found = _catalogs(catalogs)
    cli_variables = dict(variables or {})
    with _store(f) as store:
        timeline = _timeline(store, subscribers)
        reg = _registry(timeline, required=False) if registry else None
        p = prepare(
            f,
            pipeline_id=store.pipelines.next_id(),
            cli_variables=cli_variables,
            variables_file=variables_file,
            ref=ref,
            source=source,
            registry=reg,
            only=jobs,
            projects=projects,
            catalogs=found,
            inputs=inputs,
        )
        for warning in p.spec.warnings:  # what GitLab accepts, said before the jobs run
            timeline.emit(
                "pipeline.note", f"warning: {warning}", level="warning", data={"title": "warning"}
            )
        if reason := p.selection.empty_reason:
            return RunResult(empty_reason=reason)
        cfg = RunConfig(
            project_dir=f.parent,
            state_dir=ci_state_dir(f.parent),
            executor=executor,
            cli_variables=cli_variables,
            project_variables=p.project_variables,
            masked=p.masked,
            play=tuple(manual),
            concurrency=concurrency,
            protected_ref=p.protected,
            keep_workspaces=keep_workspaces,
            context=p.context,
            host_env=environ,
        )
        result = PipelineRunner(cfg, store, timeline).run(p.spec, p.selection, p.predefined)
        return RunResult(pipeline=_pipeline(store, result.pipeline_id, cfg.state_dir))


def interrupt_unfinished(file: Path, reason: str) -> list[InterruptedPipeline]:
    """Mark the pipelines of `file`'s project that a dead process left running as
    `interrupted` (their running jobs too, with `reason`), after stopping what their jobs left
    running (docker jobs' containers, shell jobs' process groups); oldest first. For the server
    at start: nothing else runs its environments' pipelines."""
    with _store(_file(file)) as store:
        left: dict[int, LeftRunning] = {}
        for row in store.pipelines.unfinished():
            running = [j for j in store.jobs.of(row.id) if j.status == "running"]
            left[row.id] = stop_left_running(store, running)
        # Marked after the stopping: a crash in between finds them again at the next start.
        ids = store.pipelines.interrupt_unfinished(reason)
    return [
        InterruptedPipeline(
            id=pid,
            stopped=left[pid].stopped if pid in left else [],
            problems=left[pid].problems if pid in left else [],
        )
        for pid in ids
    ]


def supersede(
    file: Path, ref: str | None, commit: str, subscribers: Sequence[Subscriber] = ()
) -> list[Redundant]:
    """`commit` is newer on branch `ref` than what the running pipelines of `file`'s project
    run: GitLab's auto-cancel of redundant pipelines, each by its own
    `workflow:auto_cancel:on_new_commit` (`PipelineRecorder.cancel_redundant`); the process
    running a pipeline sees the request and cancels. What was decided, per pipeline (none yet
    running: an empty list)."""
    with _store(_file(file)) as store:
        recorder = PipelineRecorder(store, _timeline(store, subscribers))
        return recorder.cancel_redundant(ref, commit=commit)


def history(file: Path, limit: int = 20, before: int | None = None) -> PipelineHistory:
    """Pipelines run here, newest first (only those older than pipeline `before`, if given)."""
    with _store(_file(file)) as store:
        return PipelineHistory(
            pipelines=[
                _view(PipelineSummary, r, duration=r.duration)
                for r in store.pipelines.latest(limit, before)
            ]
        )


def show(file: Path, pipeline: int) -> PipelineView:
    """One pipeline with its jobs: status, timings, exit codes, test counts and failures,
    artifacts, environments."""
    f = _file(file)
    with _store(f) as store:
        return _pipeline(store, pipeline, ci_state_dir(f.parent))


def logs(file: Path, job: str, pipeline: int | None = None) -> JobLog:
    """A job's saved log (secrets masked): `job` is an id, or a name (its latest run, in
    `pipeline` if given)."""
    with _store(_file(file)) as store:
        row = store.jobs.find(job, pipeline)
    if row is None or not row.log_path:
        raise ConveyorError(f"no log for job {job!r}")
    try:
        text = Path(row.log_path).read_text(errors="replace")
    except OSError as e:
        raise ConveyorError(str(e)) from None
    return JobLog(job_id=row.id, name=row.name, text=text)


def artifacts(
    file: Path,
    job: str,
    pipeline: int | None = None,
    *,
    out: Path | None = None,
    extract: bool = True,
) -> ArtifactsView:
    """A job's artifacts, GitLab's "browse" and "download": `job` is an id, or a name (its
    latest run, in `pipeline` if given). With `extract`, they are written into `out` (merged
    with what is there), by default into `.conveyor/ci/downloads/<job id>-<job slug>/` in the
    project (emptied first), which no job's checkout includes. Paths are checked again on the
    way out: nothing lands outside the directory, nothing is written through a symlink."""
    f = _file(file)
    with _store(f) as store:
        row = store.jobs.find(job, pipeline)
        if row is not None and pipeline is not None and row.pipeline_id != pipeline:
            row = None  # an id of another pipeline's job
        if row is None:
            raise ConveyorError(_no_such_job(store, job, pipeline))
    state = ci_state_dir(f.parent)
    kept, manifest = kept_artifacts(state, row.id)
    who = f"job {row.name!r} (#{row.id}, pipeline {row.pipeline_id})"
    if manifest is None:
        if row.artifacts is not None:
            raise ConveyorError(
                f"the artifacts of {who} expired and were removed: run the job again"
            )
        raise ConveyorError(f"{who} kept no artifacts ({row.status})")
    if manifest.expired(time.time()):
        raise ConveyorError(
            f"the artifacts of {who} expired at {_when(manifest.expire_at)} (`expire_in`): "
            "run the job again"
        )
    dest: Path | None = None
    if extract:
        dest = out if out is not None else state / "downloads" / f"{row.id}-{slugify(row.name)}"
        if out is None:
            shutil.rmtree(dest, ignore_errors=True)  # ours: a second download is exact
        try:
            kept.restore(manifest, dest)
        except OSError as e:
            raise ConveyorError(f"cannot extract into {dest}: {e.strerror or e}") from None
    return ArtifactsView(
        job_id=row.id,
        name=row.name,
        pipeline=row.pipeline_id,
        created_at=manifest.created_at,
        expire_at=manifest.expire_at,
        files=manifest.files,
        bytes=manifest.size,
        entries=[
            ArtifactEntry(path=path, kind=e.kind, size=e.size, target=e.target)
            for path, e in sorted(manifest.snapshot.entries.items())
        ],
        out=None if dest is None else str(dest),
    )


def artifact_file(file: Path, job: int, path: str) -> Path:
    """Where the stored content of file `path` (as listed: relative, `/`-separated) of job
    `job`'s artifacts is, to send as a download. The path is looked up in the manifest, never
    joined to a directory. ConveyorError when the job kept no such file or they expired."""
    f = _file(file)
    kept, manifest = kept_artifacts(ci_state_dir(f.parent), job)
    if manifest is None or manifest.expired(time.time()):
        raise ConveyorError(f"job {job} has no artifacts to download (none kept, or expired)")
    entry = manifest.snapshot.entries.get(path)
    if entry is None or entry.kind != "file" or entry.digest is None:
        raise ConveyorError(f"the artifacts of job {job} have no file {path!r}")
    return kept.blobs.path(entry.digest)


def environments(file: Path) -> EnvironmentsView:
    """Environments the pipelines deployed, with their URL and state, by name."""
    with _store(_file(file)) as store:
        envs = store.jobs.environments()
    out: list[EnvironmentView] = []
    for name, job in sorted(envs.items()):
        env = _environment(job)
        out.append(
            EnvironmentView(
                name=name,
                state="stopped" if env and env.action == "stop" else "available",
                url=env.url if env else None,
                job=job.name,
                job_id=job.id,
                pipeline=job.pipeline_id,
                on_stop=env.on_stop if env else None,
            )
        )
    return EnvironmentsView(environments=out)


def stop(
    file: Path,
    environment: str,
    *,
    executor: Executor = "docker",
    registry: bool = True,
    subscribers: Sequence[Subscriber] = (),
    catalogs: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineView:
    """Stop an environment: run the `on_stop` job of the job that last deployed it (GitLab's
    "Stop environment"), alone, whatever its `when` and `needs`. With `registry`, a registry
    that cannot start is an error. `catalogs` and `inputs` serve the pipeline's includes and
    header, and `environ` the shell executor, as for `run`."""
    f = _file(file)
    found = _catalogs(catalogs)
    with _store(f) as store:
        timeline = _timeline(store, subscribers)
        last = store.jobs.environments().get(environment)
        env = None if last is None else _environment(last)
        if last is None or env is None:
            raise ConveyorError(f"no environment {environment!r} was deployed from {f}")
        if env.action == "stop":
            raise ConveyorError(f"environment {environment!r} is already stopped")
        if not env.on_stop:
            raise ConveyorError(f"{last.name} sets no environment:on_stop for {environment!r}")
        p = prepare(
            f,
            pipeline_id=store.pipelines.next_id(),
            cli_variables={},
            registry=_registry(timeline, required=True) if registry else None,
            source="web",
            catalogs=found,
            inputs=inputs,
        )
        job = next((j for j in p.selection.jobs if j.name == env.on_stop), None)
        if job is None:
            raise ConveyorError(
                f"the on_stop job {env.on_stop!r} is not in this pipeline for this ref"
            )
        # run alone: the environment exists already, whatever the job waited for back then
        alone = job.model_copy(update={"needs": (), "when": "on_success", "dependencies": ()})
        selection = replace(p.selection, jobs=[alone])
        cfg = RunConfig(
            project_dir=f.parent,
            state_dir=ci_state_dir(f.parent),
            executor=executor,
            project_variables=p.project_variables,
            masked=p.masked,
            protected_ref=p.protected,
            context=p.context,
            host_env=environ,
        )
        result = PipelineRunner(cfg, store, timeline).run(p.spec, selection, p.predefined)
        return _pipeline(store, result.pipeline_id, cfg.state_dir)


def retry(
    file: Path,
    job: int,
    *,
    executor: Executor = "docker",
    variables: Mapping[str, str] | None = None,
    registry: bool = True,
    subscribers: Sequence[Subscriber] = (),
    catalogs: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    actor: str | None = None,
) -> PipelineView:
    """GitLab's "Retry" of job `job` (an id): a failed, canceled or interrupted job of a
    finished pipeline runs again as a new attempt, with the artifacts and dotenv variables of
    the jobs it depends on from that pipeline; then the jobs depending on it that were skipped
    run if they now can, and the pipeline's status is recomputed. The pipeline is read again
    from `file` for its own ref and id, and must be at its commit. `variables` are pipeline
    variables: the ones given to `ci run` are not stored, give them again. The rest as `run`;
    `actor` is who asked (said in the pipeline's timeline). The pipeline, as it ended."""
    return _rerun(
        "retry", file, job, executor=executor, variables=variables, registry=registry,
        subscribers=subscribers, catalogs=catalogs, inputs=inputs, environ=environ, actor=actor,
    )  # fmt: skip


def play(
    file: Path,
    job: int,
    *,
    executor: Executor = "docker",
    variables: Mapping[str, str] | None = None,
    registry: bool = True,
    subscribers: Sequence[Subscriber] = (),
    catalogs: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    actor: str | None = None,
) -> PipelineView:
    """GitLab's "Play" of manual job `job` (an id) of a finished (or blocked) pipeline: it
    runs, then what depends on it and can now run; arguments as `retry`."""
    return _rerun(
        "play", file, job, executor=executor, variables=variables, registry=registry,
        subscribers=subscribers, catalogs=catalogs, inputs=inputs, environ=environ, actor=actor,
    )  # fmt: skip


def rerun_refusal(file: Path, kind: RerunKind, job: int) -> tuple[JobRow, str | None]:
    """Job `job` and why it cannot be retried/played now (None: it can), without running it.
    ConveyorError when there is no such job. For a caller that answers before it runs the job
    in the background (the server)."""
    f = _file(file)
    with _store(f) as store:
        row, _, refused = _rerun_check(store, kind, job)
        pl = store.pipelines.get(row.pipeline_id)
    head = git_facts(f.parent).sha
    if refused is None and pl is not None and pl.sha and head != pl.sha:
        refused = (
            f"pipeline {pl.id} ran commit {pl.sha[:12]}, the project is at {head[:12]} now: "
            "only jobs of a pipeline of the commit checked out are run again"
        )
    return row, refused


def _rerun_check(
    store: Store, kind: RerunKind, job: int
) -> tuple[JobRow, dict[str, StoredJob], str | None]:
    row = store.jobs.find(str(job))
    if row is None:
        raise ConveyorError(f"no job {job} has run here (see `conveyor ci show PIPELINE`)")
    pl = store.pipelines.get(row.pipeline_id)
    if pl is None:
        raise ConveyorError(f"no pipeline {row.pipeline_id}")
    latest = _latest_jobs(store.jobs.of(pl.id))
    refused = refusal(kind, pl.status, _stored(row), latest)
    if refused is None and pl.parent_pipeline_id is not None:
        refused = "a job of a downstream pipeline is not retried or played on its own (yet)"
    return row, latest, refused


def _rerun(
    kind: RerunKind,
    file: Path,
    job: int,
    *,
    executor: Executor,
    variables: Mapping[str, str] | None,
    registry: bool,
    subscribers: Sequence[Subscriber],
    catalogs: Sequence[str],
    inputs: Mapping[str, str] | None,
    environ: Mapping[str, str] | None,
    actor: str | None,
) -> PipelineView:
    f = _file(file)
    found = _catalogs(catalogs)
    cli_variables = dict(variables or {})
    with _store(f) as store:
        row, latest, refused = _rerun_check(store, kind, job)
        if refused is not None:
            raise ConveyorError(f"cannot {kind} job #{job} ({row.name}): {refused}")
        pl = store.pipelines.get(row.pipeline_id)
        assert pl is not None  # checked by _rerun_check
        timeline = _timeline(store, subscribers)
        reg = _registry(timeline, required=False) if registry else None
        p = prepare(
            f,
            pipeline_id=pl.id,
            cli_variables=cli_variables,
            ref=pl.ref,
            source=pl.source,
            registry=reg,
            catalogs=found,
            inputs=inputs,
        )
        sha = p.predefined.get("CI_COMMIT_SHA")
        if pl.sha and sha != pl.sha:
            raise ConveyorError(
                f"pipeline {pl.id} ran commit {pl.sha[:12]}, the project is at "
                f"{(sha or 'no commit')[:12]}: check out {pl.sha[:12]} to {kind} its jobs"
            )
        spec_job = next((j for j in p.selection.jobs if j.name == row.name), None)
        if spec_job is None:
            raise ConveyorError(
                f"job {row.name!r} is not in {f.name} for {pl.ref or 'this ref'} any more"
            )
        if p.spec.jobs[spec_job.spec].trigger is not None:
            raise ConveyorError(f"{row.name} is a trigger job: retrying one is not supported yet")
        if not store.pipelines.resume(pl.id):
            raise ConveyorError(f"cannot {kind} job #{job}: pipeline {pl.id} runs already")
        by = f" by {actor}" if actor else ""
        timeline.emit(
            "pipeline.note",
            f"{kind}: pipeline #{pl.id} runs {row.name} again{by}",
            pipeline=pl.id,
            commit=pl.sha,
            job=row.id,
            data={"title": kind, "job": row.name, "actor": actor},
        )
        cfg = RunConfig(
            project_dir=f.parent,
            state_dir=ci_state_dir(f.parent),
            executor=executor,
            cli_variables=cli_variables,
            project_variables=p.project_variables,
            masked=p.masked,
            protected_ref=p.protected,
            context=p.context,
            host_env=environ,
            auto_cancel=False,  # an old pipeline run again cancels nothing
        )
        try:
            PipelineRunner(cfg, store, timeline).rerun(
                pl.id, p.spec, p.selection, p.predefined, row.name, latest
            )
        except BaseException:
            # never leave it `running` with nothing running it
            store.pipelines.finish(pl.id, "failed", pl.tests, pl.coverage)
            raise
        return _pipeline(store, pl.id, cfg.state_dir)


def _stored(row: JobRow) -> StoredJob:
    return StoredJob(
        id=row.id,
        name=row.name,
        status=row.status,
        allow_failure=row.allow_failure,
        attempt=row.attempt,
        started=row.started_at is not None,
    )


def _latest_jobs(rows: Sequence[JobRow]) -> dict[str, StoredJob]:
    """Each job name's latest attempt (rows in id order: a later one replaces an earlier)."""
    return {row.name: _stored(row) for row in rows}


# --- helpers ---------------------------------------------------------------------------------


def _file(file: Path) -> Path:
    if not file.exists():
        raise ConveyorError(f"{file}: no such file (pass --file PATH/.gitlab-ci.yml)")
    return file.resolve()


@contextmanager
def _store(file: Path) -> Iterator[Store]:
    """The project's database (the pipeline file's directory is the project)."""
    store = ci_store(file.parent)
    try:
        yield store
    finally:
        store.close()


def _timeline(store: Store, subscribers: Sequence[Subscriber]) -> Timeline:
    return Timeline(Subject(project=store.project), store.events, "ci", list(subscribers))


def _prepare_for_ref(
    file: Path,
    ref: str | None,
    source: str,
    projects: Mapping[str, Path] | None,
    catalogs: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
) -> Prepared:
    """The pipeline as `ref` and `source` would get it, to look at (nothing is recorded)."""
    return prepare(
        _file(file),
        pipeline_id=0,
        cli_variables={},
        ref=ref,
        source=source,
        projects=projects,
        catalogs=_catalogs(catalogs),
        inputs=inputs,
    )


def _catalogs(given: Sequence[str]) -> list[Catalog]:
    """`--component-catalog` values: `DIR` or `GROUP/PROJECT=PATH`."""
    return [parse_catalog(text) for text in given]


def _registry(timeline: Timeline, required: bool) -> RegistryInfo | None:
    """Start (or find) the host's registry for CI_REGISTRY*. Without one a pipeline still runs,
    after a `pipeline.note`; `required` makes its absence an error."""
    registry = registry_from_env()
    try:
        registry.ensure()
    except ConveyorError as e:
        if required:
            raise
        what = "registry not available"
        timeline.emit(
            "pipeline.note",
            f"{what} ({e}); CI_REGISTRY is not set",
            level="warning",
            data={"title": what},
        )
        return None
    user, password = registry.credentials()
    return RegistryInfo(registry.url, user, password)


def _environment(job: JobRow) -> JobEnvironment | None:
    return None if job.environment is None else JobEnvironment(**job.environment)


def _view(view: type[V], row: BaseModel, **given: Any) -> V:
    """A `view` of a record: the fields they share, copied, and the `given` ones."""
    return view(**row.model_dump(include=set(view.model_fields) - set(given)), **given)


def _pipeline(store: Store, pid: int, state_dir: Path) -> PipelineView:
    """A pipeline's view, with the downstream pipelines its trigger jobs created inside them."""
    pl = store.pipelines.get(pid)
    if pl is None:
        raise ConveyorError(f"no pipeline {pid}")
    downstream = {
        child.trigger_job_id: _pipeline(store, child.id, state_dir)
        for child in store.pipelines.downstream(pid)
    }
    failures = store.jobs.test_failures(pid)
    now = time.time()
    jobs = [
        _view(
            JobView,
            j,
            when=j.when_,
            duration=j.duration,
            environment=_environment(j),
            artifacts=_job_artifacts(j, kept_artifacts(state_dir, j.id)[1], now),
            test_failures=[TestFailureView(**f.model_dump()) for f in failures.get(j.id, [])],
            downstream=downstream.get(j.id),
        )
        for j in store.jobs.of(pid)
    ]
    return _view(PipelineView, pl, duration=pl.duration, jobs=jobs)


def _job_artifacts(
    job: JobRow, manifest: ArtifactManifest | None, now: float
) -> JobArtifacts | None:
    """The recorded counts, and what the manifest still says (gone once expired)."""
    if job.artifacts is None:
        return None
    if manifest is None or manifest.expired(now):
        expire_at = manifest.expire_at if manifest is not None else None
        return JobArtifacts(**job.artifacts, expire_at=expire_at, expired=True)
    top: set[str] = set()
    for path, entry in manifest.snapshot.entries.items():
        head, sep, _ = path.partition("/")
        top.add(head + "/" if sep or entry.kind == "dir" else head)
    return JobArtifacts(
        **job.artifacts, entries=sorted(top), expire_at=manifest.expire_at, expired=False
    )


def _no_such_job(store: Store, job: str, pipeline: int | None) -> str:
    if pipeline is None:
        return f"no job {job!r} has run here (see `conveyor ci history` and `ci show N`)"
    names = sorted({j.name for j in store.jobs.of(pipeline)})
    if not names:
        return f"no pipeline {pipeline}"
    return f"no job {job!r} in pipeline {pipeline} (its jobs: {', '.join(names)})"


def _when(t: float | None) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
