"""`conveyor ci …`: run `.gitlab-ci.yml` pipelines locally, with GitLab's semantics."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape as esc
from rich.table import Table

from conveyor.ci.run.config import RunConfig
from conveyor.ci.run.prepare import (
    RegistryInfo,
    ci_state_dir,
    ci_store,
    prepare,
    registry_from_env,
)
from conveyor.ci.run.runner import PipelineRunner
from conveyor.cli.output import console, err, print_json
from conveyor.errors import ConveyorError
from conveyor.model.events import Event, Subject
from conveyor.store.db import Store
from conveyor.store.pipelines import PipelineStore
from conveyor.store.timeline import Timeline

app = typer.Typer(
    help=(
        "Run GitLab CI pipelines (.gitlab-ci.yml) on this machine, without a GitLab server.\n\n"
        "  conveyor ci lint              # schema and meaning, with file:line\n\n"
        "  conveyor ci graph             # stages, jobs, needs; which jobs rules keep\n\n"
        "  conveyor ci run               # the whole pipeline, live logs\n\n"
        "  conveyor ci run unit --executor shell --variable DEBUG=1\n\n"
        "  conveyor ci history / ci show 3 / ci logs unit"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

CiFile = Annotated[
    Path, typer.Option("--file", "-f", help="The pipeline file; its directory is the project.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (docs/ci.md).")]
RefOpt = Annotated[
    str | None, typer.Option("--ref", help="Branch or tag to run for (default: HEAD's).")
]
ProjectsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include-project",
        help="GROUP/PROJECT=PATH: where `include: project:` finds that project's git repository "
        "(repeatable).",
    ),
]
SourceOpt = Annotated[
    str,
    typer.Option("--source", help="CI_PIPELINE_SOURCE: push, web, schedule, merge_request_event…"),
]


def secs(d: float) -> str:
    return f"{d:.2f}s" if d < 1 else f"{d:.1f}s"


def _file(file: Path) -> Path:
    if not file.exists():
        raise ConveyorError(f"{file}: no such file (pass --file PATH/.gitlab-ci.yml)")
    return file.resolve()


def _store(project_dir: Path) -> Store:
    return ci_store(project_dir)


def _timeline(store: Store, show: LiveReporter) -> Timeline:
    return Timeline(Subject(project=store.project), store.events, "ci", [show])


def _projects(pairs: list[str] | None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in pairs or []:
        name, sep, path = p.partition("=")
        if not sep or not name or not path:
            raise ConveyorError(f"--include-project {p!r}: expected GROUP/PROJECT=PATH")
        if not Path(path).is_dir():
            raise ConveyorError(f"--include-project {p!r}: {path} is not a directory")
        out[name] = Path(path).resolve()
    return out


def _registry(required: bool) -> RegistryInfo | None:
    """Start (or find) the host's registry for CI_REGISTRY*. Without one a pipeline still runs,
    with a warning; `required` makes its absence an error."""

    registry = registry_from_env()
    try:
        registry.ensure()
    except ConveyorError as e:
        if required:
            raise
        err.print(f"[yellow]registry not available[/] ({e}); CI_REGISTRY is not set")
        return None
    user, password = registry.credentials()
    return RegistryInfo(registry.url, user, password)


def _parse_vars(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise ConveyorError(f"--variable {p!r}: expected KEY=VALUE")
        out[key] = value
    return out


@app.command()
def lint(
    file: CiFile = Path(".gitlab-ci.yml"),
    ref: RefOpt = None,
    source: SourceOpt = "push",
    include_project: ProjectsOpt = None,
) -> None:
    """Check the pipeline file: GitLab's schema, then meaning (stages, needs, cycles, scripts)."""

    f = _file(file)
    p = prepare(
        f,
        pipeline_id=0,
        cli_variables={},
        ref=ref,
        source=source,
        projects=_projects(include_project),
    )
    jobs = p.selection.jobs
    err.print(
        f"[green]valid[/]: {len(p.spec.jobs)} jobs in {len(p.spec.stages)} stages; "
        f"{len(jobs)} run for {p.predefined.get('CI_COMMIT_REF_NAME', '?')} "
        f"({source})",
        highlight=False,
    )
    if reason := p.selection.empty_reason:
        err.print(f"[yellow]note:[/] {reason}")


@app.command()
def graph(
    file: CiFile = Path(".gitlab-ci.yml"),
    ref: RefOpt = None,
    source: SourceOpt = "push",
    as_json: JsonOpt = False,
    include_project: ProjectsOpt = None,
) -> None:
    """Stages, jobs and `needs` edges, and which jobs the rules keep for this ref."""

    p = prepare(
        _file(file),
        pipeline_id=0,
        cli_variables={},
        ref=ref,
        source=source,
        projects=_projects(include_project),
    )
    data: dict[str, Any] = {
        "version": 1,
        "ref": p.predefined.get("CI_COMMIT_REF_NAME"),
        "source": source,
        "workflow": {"runs": p.selection.workflow_ok, "reason": p.selection.workflow_reason},
        "stages": [
            {
                "name": stage,
                "jobs": [
                    {
                        "name": j.name,
                        "when": j.when,
                        "allow_failure": j.allow_failure,
                        "needs": None if j.needs is None else [n.job for n in j.needs],
                    }
                    for j in p.selection.jobs
                    if j.stage == stage
                ],
            }
            for stage in p.spec.stages
        ],
        "decisions": [
            {"job": d.job, "decision": d.decision, "reason": d.reason}
            for d in p.selection.decisions
        ],
    }
    if as_json:
        print_json(data)
        return
    for st in data["stages"]:
        if not st["jobs"]:
            continue
        console.print(f"[bold]{st['name']}[/]")
        for j in st["jobs"]:
            needs = (
                "" if j["needs"] is None else f"  ← needs {', '.join(j['needs']) or '(nothing)'}"
            )
            flag = "" if j["when"] == "on_success" else f" [{j['when']}]"
            console.print(esc(f"  {j['name']}{flag}{needs}"), highlight=False)
    dropped = [d for d in p.selection.decisions if d.decision == "excluded"]
    if dropped:
        console.print("[dim]not in this pipeline:[/]")
        for d in dropped:
            console.print(f"  [dim]{esc(d.job)}: {esc(d.reason)}[/]", highlight=False)


class LiveReporter:
    """Timeline subscriber: each job's output as it comes, prefixed with the job's name, and a
    line when a job starts and ends."""

    COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.plain = not console.is_terminal  # a file or pipe gets no colour codes
        self._lock = threading.Lock()
        self._colour: dict[str, str] = {}
        self._partial: dict[str, str] = {}

    def _c(self, name: str) -> str:
        return self._colour.setdefault(name, self.COLOURS[len(self._colour) % len(self.COLOURS)])

    def __call__(self, e: Event) -> None:
        name = str(e.data.get("name", ""))
        match e.kind:
            case "job.started":
                self.job_started(name, e.subject.job, str(e.data.get("executor")))
            case "job.output":
                self.job_output(name, e.message)
            case "job.finished":
                self.job_finished(name, e.data)

    def job_started(self, name: str, job_id: int | None, executor: str) -> None:
        with self._lock:
            err.print(
                f"[{self._c(name)}]▶ {esc(name)}[/] [dim](job {job_id}, {executor})[/]",
                highlight=False,
            )

    def job_output(self, name: str, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            buf = self._partial.get(name, "") + text
            *lines, rest = buf.split("\n")
            self._partial[name] = rest
            for line in lines:
                self._line(name, line)

    def _line(self, name: str, line: str) -> None:
        if self.plain:
            line = ANSI.sub("", line)
        console.print(f"[{self._c(name)}]{esc(f'{name:>14}')} │[/] ", end="", highlight=False)
        console.out(line, highlight=False)

    def job_finished(self, name: str, result: dict[str, Any]) -> None:
        with self._lock:
            rest = self._partial.pop(name, "")
            if rest and not self.quiet:
                self._line(name, rest)
            status = str(result["status"])
            mark = {"success": "[green]✓[/]", "failed": "[red]✗[/]"}.get(status, "•")
            extra = " (allowed to fail)" if result.get("allowed_failure") else ""
            extra += ", retrying" if result.get("retried") else ""
            took = secs(float(result.get("seconds") or 0.0))
            err.print(f"{mark} {esc(name)} {status}{extra} in {took}", highlight=False)


@app.command()
def run(
    jobs: Annotated[
        list[str] | None, typer.Argument(help="Only these jobs (and what they need).")
    ] = None,
    file: CiFile = Path(".gitlab-ci.yml"),
    executor: Annotated[
        str, typer.Option(help="shell or docker, for jobs not tagged shell/docker.")
    ] = "docker",
    variable: Annotated[
        list[str] | None,
        typer.Option("--variable", "-v", help="KEY=VALUE (repeatable); overrides the YAML."),
    ] = None,
    manual: Annotated[
        list[str] | None, typer.Option("--manual", help="Play this manual job (repeatable).")
    ] = None,
    ref: RefOpt = None,
    source: SourceOpt = "push",
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", help="Jobs at once.")] = 2,
    variables_file: Annotated[
        Path | None,
        typer.Option(help="Project CI/CD variables (default .conveyor/ci/variables.yaml)."),
    ] = None,
    no_registry: Annotated[
        bool, typer.Option("--no-registry", help="Do not start the local registry.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Job statuses only, no logs.")
    ] = False,
    keep_workspaces: Annotated[
        bool, typer.Option(help="Keep each job's workspace for debugging.")
    ] = False,
    include_project: ProjectsOpt = None,
) -> None:
    """Run the pipeline (or the named jobs and what they need), with live logs."""

    if executor not in ("shell", "docker"):
        raise ConveyorError(f"--executor {executor!r}: choose shell or docker")
    f = _file(file)
    project_dir = f.parent
    store = _store(project_dir)
    records = PipelineStore(store)
    reg = None if no_registry else _registry(required=False)
    p = prepare(
        f,
        pipeline_id=records.next_id(),
        cli_variables=_parse_vars(variable),
        variables_file=variables_file,
        ref=ref,
        source=source,
        registry=reg,
        only=jobs or (),
        projects=_projects(include_project),
    )
    if reason := p.selection.empty_reason:
        err.print(f"[yellow]no pipeline[/]: {reason}")
        raise typer.Exit(0)
    cfg = RunConfig(
        project_dir=project_dir,
        state_dir=ci_state_dir(project_dir),
        executor=executor,  # type: ignore[arg-type]
        cli_variables=_parse_vars(variable),
        project_variables=p.project_variables,
        masked=p.masked,
        play=tuple(manual or ()),
        concurrency=concurrency,
        protected_ref=p.protected,
        keep_workspaces=keep_workspaces,
    )
    err.print(
        f"[bold]pipeline[/] for {p.predefined.get('CI_COMMIT_REF_NAME')} "
        f"@ {p.predefined.get('CI_COMMIT_SHORT_SHA')}: {len(p.selection.jobs)} jobs",
        highlight=False,
    )
    result = PipelineRunner(cfg, store, _timeline(store, LiveReporter(quiet))).run(
        p.spec, p.selection, p.predefined
    )
    _summary(records, result.pipeline_id)
    if result.status not in ("success", "manual"):
        raise typer.Exit(1)


def _summary(records: PipelineStore, pid: int) -> None:
    pl = records.pipeline(pid)
    assert pl is not None
    t = Table(title=f"pipeline {pid}: {pl.status}", title_justify="left")
    for col in ("job", "stage", "status", "duration", "exit", "tests"):
        t.add_column(col)
    for j in records.jobs(pid):
        tests = j.tests
        tt = f"{tests.get('passed', 0)}/{tests.get('total', 0)}" if tests else ""
        dur = "" if j.duration is None else secs(j.duration)
        t.add_row(
            esc(j.name),
            j.stage,
            _status(j.status, j.allow_failure),
            dur,
            "" if j.exit_code is None else str(j.exit_code),
            tt,
        )
    console.print(t)
    for j in records.jobs(pid):
        env = j.environment
        if env and j.status == "success":
            verb = {"stop": "stopped", "start": "deployed"}.get(env["action"], env["action"])
            where = f" at {env['url']}" if env.get("url") and env["action"] != "stop" else ""
            console.print(
                f"environment {esc(env['name'])}: {verb} by {esc(j.name)}{where}", highlight=False
            )
    if pl.tests:
        console.print(
            f"tests: {pl.tests.get('total', 0)} total, {pl.tests.get('failed', 0)} failed, "
            f"{pl.tests.get('errors', 0)} errors, {pl.tests.get('skipped', 0)} skipped"
        )


def _status(status: str, allow_failure: bool) -> str:
    colour = {
        "success": "green",
        "failed": "red",
        "skipped": "dim",
        "manual": "yellow",
        "canceled": "magenta",
    }.get(status, "white")
    warn = " (allowed)" if status == "failed" and allow_failure else ""
    return f"[{colour}]{status}{warn}[/]"


def _pipeline_json(records: PipelineStore, pid: int) -> dict[str, Any]:
    pl = records.pipeline(pid)
    if pl is None:
        raise ConveyorError(f"no pipeline {pid}")
    return {
        "version": 1,
        "id": pl.id,
        "ref": pl.ref,
        "sha": pl.sha,
        "source": pl.source,
        "status": pl.status,
        "started_at": pl.started_at,
        "finished_at": pl.finished_at,
        "duration": None if pl.duration is None else round(pl.duration, 3),
        "executor": pl.executor,
        "tests": pl.tests,
        "coverage": pl.coverage,
        "jobs": [
            {
                "id": j.id,
                "name": j.name,
                "stage": j.stage,
                "status": j.status,
                "when": j.when_,
                "allow_failure": j.allow_failure,
                "attempt": j.attempt,
                "retry_of": j.retry_of,
                "duration": None if j.duration is None else round(j.duration, 3),
                "exit_code": j.exit_code,
                "failure_reason": j.failure_reason,
                "executor": j.executor,
                "coverage": j.coverage,
                "tests": j.tests,
                "artifacts": j.artifacts,
                "environment": j.environment,
            }
            for j in records.jobs(pid)
        ],
    }


@app.command()
def history(
    file: CiFile = Path(".gitlab-ci.yml"),
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("-n", "--limit")] = 20,
) -> None:
    """Pipelines run here, newest first."""
    records = PipelineStore(_store(_file(file).parent))
    rows = records.pipelines(limit)
    if as_json:
        print_json(
            {
                "version": 1,
                "pipelines": [
                    {
                        "id": r.id,
                        "ref": r.ref,
                        "sha": r.sha,
                        "status": r.status,
                        "started_at": r.started_at,
                        "duration": None if r.duration is None else round(r.duration, 3),
                        "tests": r.tests,
                    }
                    for r in rows
                ],
            }
        )
        return
    t = Table(title="pipelines (newest first)", title_justify="left")
    for col in ("id", "when", "ref", "commit", "status", "duration", "tests"):
        t.add_column(col)
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at))
        dur = "" if r.duration is None else secs(r.duration)
        tests = f"{r.tests.get('passed', 0)}/{r.tests.get('total', 0)}" if r.tests else ""
        t.add_row(
            str(r.id), when, r.ref or "", (r.sha or "")[:8], _status(r.status, False), dur, tests
        )
    console.print(t)


@app.command()
def show(
    pipeline: Annotated[int, typer.Argument(help="Pipeline id (see `ci history`).")],
    file: CiFile = Path(".gitlab-ci.yml"),
    as_json: JsonOpt = False,
) -> None:
    """One pipeline's jobs with status, timings, exit codes and test counts."""
    records = PipelineStore(_store(_file(file).parent))
    data = _pipeline_json(records, pipeline)
    if as_json:
        print_json(data)
        return
    _summary(records, pipeline)


@app.command()
def environments(file: CiFile = Path(".gitlab-ci.yml"), as_json: JsonOpt = False) -> None:
    """Environments the pipelines deployed, with their URL and state."""
    envs = PipelineStore(_store(_file(file).parent)).environments()
    data: dict[str, Any] = {
        "version": 1,
        "environments": [
            {
                "name": name,
                "state": "stopped"
                if job.environment and job.environment["action"] == "stop"
                else "available",
                "url": (job.environment or {}).get("url"),
                "job": job.name,
                "job_id": job.id,
                "pipeline": job.pipeline_id,
                "on_stop": (job.environment or {}).get("on_stop"),
            }
            for name, job in sorted(envs.items())
        ],
    }
    if as_json:
        print_json(data)
        return
    t = Table(title="environments", title_justify="left")
    for col in ("name", "state", "url", "last job", "on_stop"):
        t.add_column(col)
    for env in data["environments"]:
        t.add_row(
            esc(env["name"]),
            env["state"],
            env["url"] or "",
            esc(f"{env['job']} (#{env['job_id']})"),
            esc(env["on_stop"] or ""),
        )
    console.print(t)


@app.command()
def stop(
    environment: Annotated[str, typer.Argument(help="Environment name (see `ci environments`).")],
    file: CiFile = Path(".gitlab-ci.yml"),
    executor: Annotated[
        str, typer.Option(help="shell or docker, for a job not tagged.")
    ] = "docker",
    no_registry: Annotated[bool, typer.Option("--no-registry")] = False,
) -> None:
    """Stop an environment: run the `on_stop` job of the job that last deployed it (GitLab's
    "Stop environment"), alone, whatever its `when` and `needs`."""
    from conveyor.ci.select.rules import PipelineSelection

    f = _file(file)
    store = _store(f.parent)
    records = PipelineStore(store)
    last = records.environments().get(environment)
    if last is None or last.environment is None:
        raise ConveyorError(f"no environment {environment!r} was deployed from {f}")
    if last.environment["action"] == "stop":
        raise ConveyorError(f"environment {environment!r} is already stopped")
    on_stop = last.environment.get("on_stop")
    if not on_stop:
        raise ConveyorError(f"{last.name} sets no environment:on_stop for {environment!r}")
    reg = None if no_registry else _registry(required=True)
    p = prepare(
        f,
        pipeline_id=records.next_id(),
        cli_variables={},
        registry=reg,
        source="web",
    )
    job = next((j for j in p.selection.jobs if j.name == on_stop), None)
    if job is None:
        raise ConveyorError(f"the on_stop job {on_stop!r} is not in this pipeline for this ref")
    # run alone: the environment exists already, whatever the job waited for back then
    alone = job.model_copy(update={"needs": (), "when": "on_success", "dependencies": ()})
    selection = PipelineSelection(
        True,
        p.selection.workflow_reason,
        p.selection.workflow_variables,
        [alone],
        p.selection.decisions,
    )
    cfg = RunConfig(
        project_dir=f.parent,
        state_dir=ci_state_dir(f.parent),
        executor="shell" if executor == "shell" else "docker",
        project_variables=p.project_variables,
        masked=p.masked,
        protected_ref=p.protected,
    )
    result = PipelineRunner(cfg, store, _timeline(store, LiveReporter())).run(
        p.spec, selection, p.predefined
    )
    _summary(records, result.pipeline_id)
    if result.status != "success":
        raise typer.Exit(1)


@app.command()
def logs(
    job: Annotated[str, typer.Argument(help="Job name (latest run) or job id.")],
    file: CiFile = Path(".gitlab-ci.yml"),
    pipeline: Annotated[int | None, typer.Option("--pipeline", "-p", help="Pipeline id.")] = None,
) -> None:
    """A job's saved log (secrets masked)."""
    records = PipelineStore(_store(_file(file).parent))
    row = records.find_job(job, pipeline)
    if row is None or not row.log_path:
        raise ConveyorError(f"no log for job {job!r}")
    try:
        text = Path(row.log_path).read_text(errors="replace")
    except OSError as e:
        raise ConveyorError(str(e)) from None
    console.out(text, highlight=False, end="")
