"""Typed results of the `conveyor ci` use cases (`conveyor.app.ci`). Their `model_dump()` is
the `--json` form documented in docs/ci.md (`ci graph`, `ci history`, `ci show`,
`ci environments`, `ci artifacts`): change a field only together with that page, scripts read
them. Fields are added without a new version; existing ones keep their meaning."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer

from conveyor.app.views import JSON_VERSION
from conveyor.model.pipeline import RuleDecision, When


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


# A duration as measured (what the tables show); the JSON rounds it to the millisecond.
Seconds = Annotated[float | None, PlainSerializer(_ms, return_type=float | None)]


class LintView(BaseModel):
    """`ci lint`: the file is valid; how many jobs it defines, how many jobs those make once
    `parallel` is expanded, and how many of them run for this ref."""

    definitions: int  # job definitions written in the file (hidden `.jobs` not counted)
    jobs: int  # the jobs they make: `parallel: 3` or a 3-combination matrix counts 3
    stages: int
    selected: int  # jobs that run for this ref and source, after rules
    ref: str | None
    source: str
    empty_reason: str | None  # why GitLab would create no pipeline for this ref
    warnings: list[str] = []  # accepted as GitLab does, but probably not meant (file:line)


# `ci graph --json` --------------------------------------------------------------------------


class GraphJob(BaseModel):
    name: str
    when: When
    allow_failure: bool
    needs: list[str] | None  # None: no `needs` (stage order); [] needs nothing
    trigger: GraphTrigger | None = None  # a trigger job: the pipeline it creates


class GraphTrigger(BaseModel):
    """What a trigger job creates: a child pipeline of this project or another project's
    pipeline, and its graph when it can be known before the pipeline runs."""

    kind: Literal["child", "multi-project"]
    source: str  # its configuration: "ci/child.yml", "group/deploy@main"
    strategy: Literal["depend", "mirror"] | None
    pipeline: GraphView | None  # None: see `note`
    note: str | None  # why there is no graph (generated when the pipeline runs, not created)


class GraphStage(BaseModel):
    name: str
    jobs: list[GraphJob]


class GraphWorkflow(BaseModel):
    runs: bool
    reason: str


class GraphDecision(BaseModel):
    job: str
    decision: RuleDecision
    reason: str


class GraphView(BaseModel):
    version: int = JSON_VERSION
    ref: str | None
    source: str
    workflow: GraphWorkflow
    stages: list[GraphStage]
    decisions: list[GraphDecision]


GraphTrigger.model_rebuild()


# `ci show --json` ---------------------------------------------------------------------------


class JobEnvironment(BaseModel):
    """The environment a job deployed (`action` start…) or stopped, name and url expanded."""

    name: str
    url: str | None
    action: str | None
    on_stop: str | None


class JobArtifacts(BaseModel):
    """What a job kept as artifacts (`ci artifacts JOB` lists and extracts them)."""

    files: int
    bytes: int
    entries: list[str] = []  # top-level paths, directories with a `/`; [] once expired
    expire_at: float | None = None  # seconds since the epoch; None: kept until removed
    expired: bool = False  # past `expire_in`: they can no longer be downloaded


class TestFailureView(BaseModel):
    """A failed (`<failure>`) or errored (`<error>`) case of a job's JUnit report."""

    __test__ = False  # not a pytest class, whatever its name

    status: Literal["failed", "error"]
    name: str
    classname: str | None
    suite: str | None
    file: str | None  # the report file
    message: str | None  # the first 2000 characters, masked as the job's log is


class JobView(BaseModel):
    id: int
    name: str
    stage: str
    status: str
    when: str
    allow_failure: bool
    attempt: int
    retry_of: int | None
    duration: Seconds
    exit_code: int | None
    failure_reason: str | None
    executor: str | None
    coverage: float | None
    tests: dict[str, int]  # JUnit counts; {} without a report
    artifacts: JobArtifacts | None
    environment: JobEnvironment | None
    test_failures: list[TestFailureView] = []  # the report's first 100 failed or errored cases
    downstream: PipelineView | None = None  # a trigger job: the pipeline it created


class PipelineView(BaseModel):
    version: int = JSON_VERSION
    id: int
    ref: str | None
    sha: str | None
    source: str
    status: str
    started_at: float
    finished_at: float | None
    duration: Seconds
    executor: str
    tests: dict[str, int]  # the jobs' JUnit counts summed; {} without reports
    coverage: float | None
    parent_pipeline_id: int | None = None  # a downstream pipeline: who created it
    trigger_job_id: int | None = None
    auto_cancel_on_new_commit: str = "conservative"  # workflow:auto_cancel, resolved
    auto_cancel_on_job_failure: str = "none"
    jobs: list[JobView]


JobView.model_rebuild()


class InterruptedPipeline(BaseModel):
    """A pipeline a dead process left running, now `interrupted`."""

    id: int
    stopped: list[str] = []  # what its jobs left running, now stopped (one phrase each)
    problems: list[str] = []  # what could not be stopped, and why


class RunResult(BaseModel):
    """`ci run`: the pipeline that ran, or why GitLab would create none."""

    empty_reason: str | None = None
    pipeline: PipelineView | None = None


# `ci history --json` ------------------------------------------------------------------------


class PipelineSummary(BaseModel):
    id: int
    ref: str | None
    sha: str | None
    status: str
    started_at: float
    duration: Seconds
    tests: dict[str, int]


class PipelineHistory(BaseModel):
    version: int = JSON_VERSION
    pipelines: list[PipelineSummary]  # newest first


# `ci environments --json` -------------------------------------------------------------------


class EnvironmentView(BaseModel):
    name: str
    state: Literal["available", "stopped"]
    url: str | None
    job: str  # the job that last deployed or stopped it
    job_id: int
    pipeline: int
    on_stop: str | None


class EnvironmentsView(BaseModel):
    version: int = JSON_VERSION
    environments: list[EnvironmentView]  # by name


# `ci artifacts --json` ----------------------------------------------------------------------


class ArtifactEntry(BaseModel):
    path: str  # relative, `/`-separated, as in the job's workspace
    kind: Literal["file", "dir", "symlink"]
    size: int  # bytes (0 for directories and links)
    target: str | None = None  # a link's target, verbatim


class ArtifactsView(BaseModel):
    """`ci artifacts`: one job's artifacts, and where they were extracted."""

    version: int = JSON_VERSION
    job_id: int
    name: str
    pipeline: int
    created_at: float
    expire_at: float | None
    files: int
    bytes: int
    entries: list[ArtifactEntry]  # by path
    out: str | None  # the directory they were extracted into; None with --list


class JobLog(BaseModel):
    """`ci logs`: a job's saved log (secrets masked)."""

    job_id: int
    name: str
    text: str
