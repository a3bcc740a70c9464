"""GitLab CI pipelines as Conveyor models them (GitLab's meanings for every word).

`PipelineSpec` is what `.gitlab-ci.yml` says after loading: includes merged, `extends`,
`default`, `inherit` and `!reference` resolved, but rules not yet evaluated. `JobRun` is one job
of one pipeline run, after rules and `parallel` expansion. Durations are seconds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from conveyor.model.stack import Frozen

When = Literal["on_success", "on_failure", "always", "manual", "delayed", "never"]
DEFAULT_STAGES: tuple[str, ...] = (".pre", "build", "test", "deploy", ".post")


class Where(Frozen):
    """Where a keyword was written, for errors and `ci graph`."""

    file: str
    line: int | None = None


class ImageSpec(Frozen):
    name: str
    entrypoint: tuple[str, ...] | None = None
    pull_policy: tuple[str, ...] = ()


class ServiceSpec(Frozen):
    """A job's `services:` entry: a container started beside the job, reachable by alias."""

    name: str  # the image
    alias: tuple[str, ...] = ()  # GitLab allows several, comma separated
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    pull_policy: tuple[str, ...] = ()  # like ImageSpec: services take `pull_policy` too


class Variable(Frozen):
    value: str
    expand: bool = True  # `expand: false` keeps `$` literal
    description: str | None = None
    options: tuple[str, ...] = ()


class NeedSpec(Frozen):
    job: str
    artifacts: bool = True
    optional: bool = False
    parallel_matrix: tuple[dict[str, str], ...] = ()  # needs:parallel:matrix selections


OnNewCommit = Literal["conservative", "interruptible", "none"]
OnJobFailure = Literal["none", "all"]


class AutoCancelSpec(Frozen):
    """`workflow:auto_cancel` (or a workflow rule's `auto_cancel`); None: not set here."""

    on_new_commit: OnNewCommit | None = None  # what a newer pipeline of the ref cancels
    on_job_failure: OnJobFailure | None = None  # `all`: a failed job cancels the pipeline


class RuleSpec(Frozen):
    if_: str | None = None  # the `if:` expression
    changes: tuple[str, ...] | None = None
    changes_compare_to: str | None = None
    exists: tuple[str, ...] | None = None
    when: When | None = None
    start_in: float | None = None
    allow_failure: bool | None = None
    allow_failure_exit_codes: tuple[int, ...] = ()
    variables: dict[str, str] = Field(default_factory=dict)
    needs: tuple[NeedSpec, ...] | None = None
    interruptible: bool | None = None  # `rules:interruptible` overrides the job's
    auto_cancel: AutoCancelSpec | None = None  # workflow rules only: overrides workflow's
    where: Where | None = None  # where the rule is written, for errors found when it is tested


class OnlyExcept(Frozen):
    """`only:` / `except:` in either the array form (refs) or the mapping form."""

    refs: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()  # expressions; any true matches
    changes: tuple[str, ...] = ()
    kubernetes: str | None = None


class RetrySpec(Frozen):
    max: int = 0
    when: tuple[str, ...] = ("always",)
    exit_codes: tuple[int, ...] = ()


class EnvironmentSpec(Frozen):
    name: str
    url: str | None = None
    action: Literal["start", "prepare", "stop", "verify", "access"] = "start"
    on_stop: str | None = None
    auto_stop_in: str | None = None
    deployment_tier: str | None = None


class ArtifactsSpec(Frozen):
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    untracked: bool = False
    when: Literal["on_success", "on_failure", "always"] = "on_success"
    expire_in: float | None = None  # None: never expires
    name: str | None = None
    expose_as: str | None = None
    reports_junit: tuple[str, ...] = ()
    reports_dotenv: tuple[str, ...] = ()
    reports_other: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # kept, not parsed


class CacheSpec(Frozen):
    key: str = "default"  # a literal key (variables expanded at run time)
    key_files: tuple[str, ...] = ()  # `key:files`: the key is a hash of these files
    key_prefix: str | None = None
    paths: tuple[str, ...] = ()
    untracked: bool = False
    # "pull-push", "pull", "push", or a `$VARIABLE` GitLab expands to one of them at run time
    policy: str = "pull-push"
    when: Literal["on_success", "on_failure", "always"] = "on_success"
    fallback_keys: tuple[str, ...] = ()
    unprotect: bool = False


class TriggerSpec(Frozen):
    """`trigger:`: the job runs no script, it creates a downstream pipeline: a child pipeline
    of this project from `include` entries, or the pipeline of another `project`."""

    # child pipeline: `local`, `artifact` + `job`, `project` + `file` (+ `ref`)… as written
    include: tuple[dict[str, Any], ...] = ()
    project: str | None = None  # multi-project pipeline: its path (may name a $VARIABLE)
    branch: str | None = None  # its ref (default: that project's default branch)
    strategy: Literal["depend", "mirror"] | None = None  # None: success once created
    forward_yaml_variables: bool = True  # the trigger job's variables reach the pipeline
    forward_pipeline_variables: bool = False  # and this pipeline's own (--variable) ones
    inputs: dict[str, Any] = Field(default_factory=dict)  # a multi-project pipeline's inputs


class ParallelSpec(Frozen):
    count: int | None = None  # `parallel: N`
    matrix: tuple[dict[str, tuple[str, ...]], ...] = ()  # `parallel:matrix`


class JobSpec(Frozen):
    name: str
    where: Where
    stage: str = "test"
    script: tuple[str, ...] = ()
    before_script: tuple[str, ...] = ()
    after_script: tuple[str, ...] = ()
    pre_get_sources_script: tuple[str, ...] = ()  # `hooks:pre_get_sources_script`
    image: ImageSpec | None = None
    services: tuple[ServiceSpec, ...] = ()
    variables: dict[str, Variable] = Field(default_factory=dict)  # job's own, after inherit
    rules: tuple[RuleSpec, ...] | None = None
    only: OnlyExcept | None = None
    except_: OnlyExcept | None = None
    when: When = "on_success"
    start_in: float | None = None
    allow_failure: bool | None = None  # None: GitLab's default (true for manual jobs w/o rules)
    allow_failure_exit_codes: tuple[int, ...] = ()
    needs: tuple[NeedSpec, ...] | None = None  # None: wait for every earlier stage
    dependencies: tuple[str, ...] | None = None  # None: artifacts of all earlier jobs
    parallel: ParallelSpec | None = None
    retry: RetrySpec = RetrySpec()
    timeout: float | None = None  # None: the runner's default
    interruptible: bool = False
    resource_group: str | None = None
    environment: EnvironmentSpec | None = None
    coverage: str | None = None  # a /regex/
    artifacts: ArtifactsSpec | None = None
    cache: tuple[CacheSpec, ...] = ()
    tags: tuple[str, ...] = ()
    inherit_default: bool | tuple[str, ...] = True
    inherit_variables: bool | tuple[str, ...] = True
    trigger: TriggerSpec | None = None  # a trigger job: no script, a downstream pipeline


class WorkflowSpec(Frozen):
    name: str | None = None
    rules: tuple[RuleSpec, ...] | None = None
    auto_cancel: AutoCancelSpec = AutoCancelSpec()


class PipelineSpec(Frozen):
    file: str  # the root .gitlab-ci.yml, absolute
    stages: tuple[str, ...] = DEFAULT_STAGES  # always starts with .pre and ends with .post
    variables: dict[str, Variable] = Field(default_factory=dict)  # top-level
    workflow: WorkflowSpec = WorkflowSpec()
    jobs: dict[str, JobSpec] = Field(default_factory=dict)  # hidden (.name) jobs excluded
    includes: tuple[str, ...] = ()  # every file that was merged in, for `ci lint`
    warnings: tuple[str, ...] = ()  # `file:line: field: message`, accepted as GitLab does


# --- one pipeline run ------------------------------------------------------------------------

JobStatus = Literal[
    "created",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
]
PipelineStatus = Literal["created", "running", "success", "failed", "canceled", "skipped"]


class JobRun(Frozen):
    """One job to run in one pipeline: rules evaluated, `parallel` expanded."""

    name: str  # as GitLab shows it: "test 1/3", "build: [linux, amd64]"
    spec: str  # the JobSpec it came from
    stage: str
    when: When
    start_in: float | None = None
    allow_failure: bool = False
    allow_failure_exit_codes: tuple[int, ...] = ()
    variables: dict[str, str] = Field(default_factory=dict)  # rule + matrix + CI_NODE_* added
    needs: tuple[NeedSpec, ...] | None = None  # names refer to JobRun names
    dependencies: tuple[str, ...] | None = None  # JobRun names (parallel expanded); None: all
    interruptible: bool = False  # the job's, or the matched rule's `interruptible`
    node_index: int | None = None  # CI_NODE_INDEX for parallel
    node_total: int | None = None


RuleDecision = Literal["kept", "excluded"]


class JobSelection(Frozen):
    """Why `ci graph` shows a job or not: the rule (or only/except) that decided."""

    job: str
    decision: RuleDecision
    reason: str  # e.g. "rules[1]: if $CI_COMMIT_BRANCH == 'main'" or "except: refs tags"
