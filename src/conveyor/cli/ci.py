"""`conveyor ci …`: run `.gitlab-ci.yml` pipelines locally, with GitLab's semantics."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import typer
from rich.table import Table

from conveyor.app import ci as ci_app
from conveyor.app.ci import Executor
from conveyor.app.ci_views import GraphTrigger, GraphView, JobView, PipelineView
from conveyor.cli.output import console, err, esc, print_json
from conveyor.errors import ConveyorError
from conveyor.model.events import Event

app = typer.Typer(
    help=(
        "Run GitLab CI pipelines (.gitlab-ci.yml) on this machine, without a GitLab server.\n\n"
        "  conveyor ci lint              # schema and meaning, with file:line\n\n"
        "  conveyor ci graph             # stages, jobs, needs; which jobs rules keep\n\n"
        "  conveyor ci run               # the whole pipeline, live logs\n\n"
        "  conveyor ci run unit --executor shell --variable DEBUG=1\n\n"
        "  conveyor ci history / ci show 3 / ci logs unit / ci artifacts browser"
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
CatalogOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--component-catalog",
        envvar="CONVEYOR_COMPONENT_CATALOG",
        help="Where `include: component:` finds component projects (repeatable): DIR holding "
        "git repositories at their project paths (DIR/group/project), or GROUP/PROJECT=PATH "
        "for one repository. Versions are its git tags (@1.0.0, @~latest, @1.2), branches or "
        "commits.",
    ),
]
InputOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        help="NAME=VALUE: a pipeline input, for a main file with a spec:inputs header "
        "(repeatable); VALUE is read as the input's type: 3, true, a YAML list.",
    ),
]
SourceOpt = Annotated[
    str,
    typer.Option("--source", help="CI_PIPELINE_SOURCE: push, web, schedule, merge_request_event…"),
]


def secs(d: float) -> str:
    return f"{d:.2f}s" if d < 1 else f"{d:.1f}s"


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


def _parse_vars(pairs: list[str] | None, option: str = "--variable") -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise ConveyorError(f"{option} {p!r}: expected KEY=VALUE")
        out[key] = value
    return out


class _Sources(TypedDict):
    projects: dict[str, Path]
    catalogs: Sequence[str]
    inputs: dict[str, str]


def _sources(
    include_project: list[str] | None,
    component_catalog: list[str] | None,
    pipeline_input: list[str] | None,
) -> _Sources:
    """Where includes, components and pipeline inputs come from (lint, graph and run alike)."""
    return _Sources(
        projects=_projects(include_project),
        catalogs=component_catalog or (),
        inputs=_parse_vars(pipeline_input, "--input"),
    )


@app.command()
def lint(
    file: CiFile = Path(".gitlab-ci.yml"),
    ref: RefOpt = None,
    source: SourceOpt = "push",
    include_project: ProjectsOpt = None,
    component_catalog: CatalogOpt = None,
    pipeline_input: InputOpt = None,
) -> None:
    """Check the pipeline file: GitLab's schema, then meaning (stages, needs, cycles, scripts)."""

    v = ci_app.lint(
        file,
        ref=ref,
        source=source,
        **_sources(include_project, component_catalog, pipeline_input),
    )
    err.print(
        f"[green]valid[/]: {v.definitions} job definitions, {v.jobs} jobs once parallel is "
        f"expanded, in {v.stages} stages; {v.selected} of those jobs run for "
        f"{'?' if v.ref is None else esc(v.ref)} ({esc(source)})",
        highlight=False,
    )
    for warning in v.warnings:
        err.print(f"[yellow]warning:[/] {esc(warning)}", highlight=False)
    if v.empty_reason:
        err.print(f"[yellow]note:[/] {esc(v.empty_reason)}")


@app.command()
def graph(
    file: CiFile = Path(".gitlab-ci.yml"),
    ref: RefOpt = None,
    source: SourceOpt = "push",
    as_json: JsonOpt = False,
    include_project: ProjectsOpt = None,
    component_catalog: CatalogOpt = None,
    pipeline_input: InputOpt = None,
) -> None:
    """Stages, jobs and `needs` edges, and which jobs the rules keep for this ref."""

    g = ci_app.graph(
        file,
        ref=ref,
        source=source,
        **_sources(include_project, component_catalog, pipeline_input),
    )
    if as_json:
        print_json(g.model_dump(mode="json"))
        return
    _print_graph(g, "")


def _print_graph(g: GraphView, indent: str) -> None:
    """Stages and jobs; a trigger job's pipeline is shown under it, indented."""
    for st in g.stages:
        if not st.jobs:
            continue
        console.print(f"{indent}[bold]{esc(st.name)}[/]", highlight=False)
        for j in st.jobs:
            needs = "" if j.needs is None else f"  ← needs {', '.join(j.needs) or '(nothing)'}"
            flag = "" if j.when == "on_success" else f" [{j.when}]"
            console.print(esc(f"{indent}  {j.name}{flag}{needs}"), highlight=False)
            if j.trigger is not None:
                _print_trigger(j.trigger, indent + "    ")
    dropped = [d for d in g.decisions if d.decision == "excluded"]
    if dropped:
        console.print(f"{indent}[dim]not in this pipeline:[/]")
        for d in dropped:
            console.print(f"{indent}  [dim]{esc(d.job)}: {esc(d.reason)}[/]", highlight=False)


def _print_trigger(t: GraphTrigger, indent: str) -> None:
    strategy = f", strategy {t.strategy}" if t.strategy else ""
    what = "child pipeline" if t.kind == "child" else "pipeline of"
    console.print(f"{indent}[cyan]⇒ {what} {esc(t.source)}{esc(strategy)}[/]", highlight=False)
    if t.note:
        console.print(f"{indent}  [dim]{esc(t.note)}[/]", highlight=False)
    if t.pipeline is not None:
        _print_graph(t.pipeline, indent + "  ")


class LiveReporter:
    """Timeline subscriber: each job's output as it comes, prefixed with the job's name, a line
    when a job starts and ends, notes, and (`announce`) a line when the pipeline starts."""

    COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")

    def __init__(self, quiet: bool = False, announce: bool = False) -> None:
        self.quiet = quiet
        self.announce = announce
        self.plain = not console.is_terminal  # a file or pipe gets no colour codes
        self._lock = threading.Lock()
        self._colour: dict[str, str] = {}
        self._partial: dict[str, str] = {}

    def _c(self, name: str) -> str:
        return self._colour.setdefault(name, self.COLOURS[len(self._colour) % len(self.COLOURS)])

    def __call__(self, e: Event) -> None:
        name = str(e.data.get("name", ""))
        match e.kind:
            case "pipeline.note":
                title = str(e.data.get("title", ""))
                rest = e.message.removeprefix(title)
                err.print(f"[yellow]{esc(title)}[/]{esc(rest)}" if title else esc(e.message))
            case "pipeline.started" if self.announce and e.data.get("label"):
                trigger = str(e.data["label"]).removesuffix(" -> ")
                err.print(
                    f"[bold]downstream pipeline[/] #{e.subject.pipeline} of {esc(trigger)}: "
                    f"{e.data.get('jobs')} jobs",
                    highlight=False,
                )
            case "pipeline.started" if self.announce:
                err.print(
                    f"[bold]pipeline[/] for {esc(str(e.data.get('ref')))} "
                    f"@ {esc(str(e.data.get('short_sha')))}: {e.data.get('jobs')} jobs",
                    highlight=False,
                )
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
    component_catalog: CatalogOpt = None,
    pipeline_input: InputOpt = None,
) -> None:
    """Run the pipeline (or the named jobs and what they need), with live logs."""

    if executor not in ("shell", "docker"):
        raise ConveyorError(f"--executor {executor!r}: choose shell or docker")
    r = ci_app.run(
        file,
        jobs=jobs or (),
        executor=_executor(executor),
        variables=_parse_vars(variable),
        manual=manual or (),
        ref=ref,
        source=source,
        concurrency=concurrency,
        variables_file=variables_file,
        registry=not no_registry,
        keep_workspaces=keep_workspaces,
        subscribers=[LiveReporter(quiet, announce=True)],
        **_sources(include_project, component_catalog, pipeline_input),
        environ=os.environ,  # shell jobs start from it, as with GitLab Runner's shell executor
    )
    if r.pipeline is None:
        err.print(f"[yellow]no pipeline[/]: {esc(r.empty_reason or '')}")
        raise typer.Exit(0)
    _summary(r.pipeline)
    if r.pipeline.status not in ("success", "manual"):
        raise typer.Exit(1)


def _executor(name: str) -> Executor:
    return "shell" if name == "shell" else "docker"


def _summary(pl: PipelineView, trigger: str = "") -> None:
    """The pipeline's jobs; then each downstream pipeline its trigger jobs created."""
    of = f" (downstream of {trigger})" if trigger else ""
    t = Table(title=f"pipeline {pl.id}{esc(of)}: {pl.status}", title_justify="left")
    for col in ("job", "stage", "status", "duration", "exit", "tests", "artifacts"):
        t.add_column(col)
    for j in pl.jobs:
        tests = j.tests
        tt = f"{tests.get('passed', 0)}/{tests.get('total', 0)}" if tests else ""
        dur = "" if j.duration is None else secs(j.duration)
        t.add_row(
            esc(j.name),
            esc(j.stage),
            _status(j.status, j.allow_failure),
            dur,
            "" if j.exit_code is None else str(j.exit_code),
            tt,
            _artifacts_cell(j),
        )
    console.print(t)
    for j in pl.jobs:
        _job_details(j)
    for j in pl.jobs:
        env = j.environment
        if env and j.status == "success":
            verb = {"stop": "stopped", "start": "deployed"}.get(env.action or "", esc(env.action))
            where = f" at {esc(env.url)}" if env.url and env.action != "stop" else ""
            console.print(
                f"environment {esc(env.name)}: {verb} by {esc(j.name)}{where}", highlight=False
            )
    if pl.tests:
        console.print(
            f"tests: {pl.tests.get('total', 0)} total, {pl.tests.get('failed', 0)} failed, "
            f"{pl.tests.get('errors', 0)} errors, {pl.tests.get('skipped', 0)} skipped"
        )
    for j in pl.jobs:
        if j.downstream is not None:
            _summary(j.downstream, f"{trigger} -> {j.name}" if trigger else j.name)


def _artifacts_cell(j: JobView) -> str:
    a = j.artifacts
    if a is None:
        return ""
    if a.expired:
        return "[dim]expired[/]"
    return f"{a.files} files, {size(a.bytes)}"


FAILURE_LINE = 160  # characters of a failure's message shown in the summary


def _job_details(j: JobView) -> None:
    """What a job kept (its artifacts' top-level paths) and which of its tests failed."""
    a = j.artifacts
    if a is not None and not a.expired and a.entries:
        console.print(
            f"artifacts of {esc(j.name)}: {esc(', '.join(a.entries))}  "
            f"[dim](conveyor ci artifacts {j.id})[/]",
            highlight=False,
        )
    if not j.test_failures:
        return
    console.print(f"[red]JUnit failures in {esc(j.name)}:[/]", highlight=False)
    for f in j.test_failures:
        name = f"{f.classname}.{f.name}" if f.classname else f.name
        first = (f.message or "").strip().splitlines()[:1]
        message = first[0][:FAILURE_LINE] if first else ""
        console.print(
            f"  {f.status:<6} {esc(name)}" + (f": {esc(message)}" if message else ""),
            highlight=False,
        )
    more = j.tests.get("failed", 0) + j.tests.get("errors", 0) - len(j.test_failures)
    if more > 0:
        console.print(f"  [dim]… and {more} more[/]")


def _status(status: str, allow_failure: bool) -> str:
    colour = {
        "success": "green",
        "failed": "red",
        "skipped": "dim",
        "manual": "yellow",
        "canceled": "magenta",
    }.get(status, "white")
    warn = " (allowed)" if status == "failed" and allow_failure else ""
    return f"[{colour}]{esc(status)}{warn}[/]"


@app.command()
def history(
    file: CiFile = Path(".gitlab-ci.yml"),
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("-n", "--limit")] = 20,
) -> None:
    """Pipelines run here, newest first."""
    h = ci_app.history(file, limit)
    if as_json:
        print_json(h.model_dump(mode="json"))
        return
    t = Table(title="pipelines (newest first)", title_justify="left")
    for col in ("id", "when", "ref", "commit", "status", "duration", "tests"):
        t.add_column(col)
    for r in h.pipelines:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at))
        dur = "" if r.duration is None else secs(r.duration)
        tests = f"{r.tests.get('passed', 0)}/{r.tests.get('total', 0)}" if r.tests else ""
        t.add_row(
            str(r.id),
            when,
            esc(r.ref or ""),
            esc((r.sha or "")[:8]),
            _status(r.status, False),
            dur,
            tests,
        )
    console.print(t)


@app.command()
def show(
    pipeline: Annotated[int, typer.Argument(help="Pipeline id (see `ci history`).")],
    file: CiFile = Path(".gitlab-ci.yml"),
    as_json: JsonOpt = False,
) -> None:
    """One pipeline's jobs: status, timings, exit codes, tests, failed tests, artifacts."""
    pl = ci_app.show(file, pipeline)
    if as_json:
        print_json(pl.model_dump(mode="json"))
        return
    _summary(pl)


@app.command()
def artifacts(
    job: Annotated[str, typer.Argument(help="Job name (latest run) or job id.")],
    file: CiFile = Path(".gitlab-ci.yml"),
    pipeline: Annotated[int | None, typer.Option("--pipeline", "-p", help="Pipeline id.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Extract into this directory (default: .conveyor/ci/downloads/ID-JOB/ in the "
            "project, which no job's checkout includes).",
            show_default=False,
        ),
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list them; extract nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """A job's artifacts, listed with sizes and extracted (GitLab's browse and download)."""
    a = ci_app.artifacts(file, job, pipeline, out=out, extract=not list_only)
    if as_json:
        print_json(a.model_dump(mode="json"))
        return
    expiry = "" if a.expire_at is None else f", expire {_when(a.expire_at)}"
    console.print(
        esc(f"artifacts of {a.name} (job {a.job_id}, pipeline {a.pipeline}){expiry}"),
        highlight=False,
    )
    t = Table()
    t.add_column("path")
    t.add_column("size", justify="right")
    for e in a.entries:
        if e.kind == "file":
            t.add_row(esc(e.path), size(e.size))
        elif e.kind == "symlink":
            t.add_row(esc(f"{e.path} -> {e.target}"), "link")
    console.print(t)
    what = f"{a.files} files, {size(a.bytes)}"
    if a.out is None:
        err.print(esc(what), highlight=False)
    else:
        err.print(f"{esc(what)} extracted into [bold]{esc(a.out)}[/]", highlight=False)


def size(n: int) -> str:
    """Bytes as people read them: 512 B, 59.1 KiB, 3.2 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


@app.command()
def environments(file: CiFile = Path(".gitlab-ci.yml"), as_json: JsonOpt = False) -> None:
    """Environments the pipelines deployed, with their URL and state."""
    envs = ci_app.environments(file)
    if as_json:
        print_json(envs.model_dump(mode="json"))
        return
    t = Table(title="environments", title_justify="left")
    for col in ("name", "state", "url", "last job", "on_stop"):
        t.add_column(col)
    for env in envs.environments:
        t.add_row(
            esc(env.name),
            env.state,
            esc(env.url or ""),
            esc(f"{env.job} (#{env.job_id})"),
            esc(env.on_stop or ""),
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
    component_catalog: CatalogOpt = None,
    pipeline_input: InputOpt = None,
) -> None:
    """Stop an environment: run its `on_stop` job alone (GitLab's "Stop environment").

    The `on_stop` job of the job that last deployed it runs whatever its `when` and `needs`."""
    pl = ci_app.stop(
        file,
        environment,
        executor=_executor(executor),
        registry=not no_registry,
        subscribers=[LiveReporter()],
        catalogs=component_catalog or (),
        inputs=_parse_vars(pipeline_input, "--input"),
        environ=os.environ,
    )
    _summary(pl)
    if pl.status != "success":
        raise typer.Exit(1)


def _rerun(kind: str, job: int, file: Path, executor: str, variable: list[str] | None,
           no_registry: bool, component_catalog: list[str] | None,
           pipeline_input: list[str] | None) -> None:  # fmt: skip
    if executor not in ("shell", "docker"):
        raise ConveyorError(f"--executor {executor!r}: choose shell or docker")
    use = ci_app.retry if kind == "retry" else ci_app.play
    pl = use(
        file,
        job,
        executor=_executor(executor),
        variables=_parse_vars(variable),
        registry=not no_registry,
        subscribers=[LiveReporter()],
        catalogs=component_catalog or (),
        inputs=_parse_vars(pipeline_input, "--input"),
        environ=os.environ,
    )
    _summary(pl)
    if pl.status not in ("success", "manual"):
        raise typer.Exit(1)


RerunVars = Annotated[
    list[str] | None,
    typer.Option(
        "--variable", "-v", help="KEY=VALUE (repeatable): the pipeline's own are not stored."
    ),
]


@app.command()
def retry(
    job: Annotated[int, typer.Argument(help="Job id (see `ci show PIPELINE`).")],
    file: CiFile = Path(".gitlab-ci.yml"),
    executor: Annotated[
        str, typer.Option(help="shell or docker, for a job not tagged.")
    ] = "docker",
    variable: RerunVars = None,
    no_registry: Annotated[bool, typer.Option("--no-registry")] = False,
    component_catalog: CatalogOpt = None,
    pipeline_input: InputOpt = None,
) -> None:
    """Retry a failed or canceled job of a finished pipeline (GitLab's "Retry").

    It runs as a new attempt with the artifacts of the jobs it depends on; then the jobs
    after it that were skipped run if they now can, and the pipeline's status is recomputed."""
    _rerun("retry", job, file, executor, variable, no_registry, component_catalog, pipeline_input)


@app.command()
def play(
    job: Annotated[int, typer.Argument(help="Id of a manual job (see `ci show PIPELINE`).")],
    file: CiFile = Path(".gitlab-ci.yml"),
    executor: Annotated[
        str, typer.Option(help="shell or docker, for a job not tagged.")
    ] = "docker",
    variable: RerunVars = None,
    no_registry: Annotated[bool, typer.Option("--no-registry")] = False,
    component_catalog: CatalogOpt = None,
    pipeline_input: InputOpt = None,
) -> None:
    """Play a manual job of a finished or blocked pipeline (GitLab's "Play").

    Then the jobs after it run if they now can, and the pipeline's status is recomputed."""
    _rerun("play", job, file, executor, variable, no_registry, component_catalog, pipeline_input)


@app.command()
def logs(
    job: Annotated[str, typer.Argument(help="Job name (latest run) or job id.")],
    file: CiFile = Path(".gitlab-ci.yml"),
    pipeline: Annotated[int | None, typer.Option("--pipeline", "-p", help="Pipeline id.")] = None,
) -> None:
    """A job's saved log (secrets masked)."""
    log = ci_app.logs(file, job, pipeline)
    console.out(log.text, highlight=False, end="")
