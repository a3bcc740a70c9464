"""What a trigger job creates: its downstream pipeline's configuration, predefined variables,
variables and jobs, ready to run (`ci run`) or to show (`ci graph`).

- A child pipeline (`trigger:include`) is read from its `local:`, `project:`, `component:`
  or `artifact:` entries, with their `inputs:` (`conveyor.ci.load.child`), and runs in this
  project, at this commit, with `CI_PIPELINE_SOURCE=parent_pipeline`; children nest two
  levels deep at most.
- A multi-project pipeline (`trigger:project`) runs the `.gitlab-ci.yml` of a project that
  `--include-project` maps to a local repository, at `trigger:branch` (default: its HEAD),
  in a shared clone of it, with `CI_PIPELINE_SOURCE=pipeline`, that project's predefined
  variables (its path is the mapped name) and `trigger:inputs` as its pipeline inputs.
- Either configuration is read as GitLab reads it when it creates the pipeline
  (`LoadContext`): with the new pipeline's config variables (its predefined ones, then
  project variables and what the trigger job passed), and the parent's projects and
  component catalogs.
- Either way its rules see the variables the trigger job passed (as pipeline variables), and a
  pipeline GitLab would not create (invalid configuration, no jobs) is a `DownstreamError`
  with GitLab's failure reason for the trigger job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from conveyor.ci.load.child import child_source, load_child_pipeline
from conveyor.ci.load.context import ArtifactReader, LoadContext, config_variables
from conveyor.ci.load.loader import load_pipeline
from conveyor.ci.run.facts import file_facts, git_facts
from conveyor.ci.run.job_env import JobVariables
from conveyor.ci.select.downstream import (
    CREATION_FAILED,
    MAX_CHILD_DEPTH,
    PROJECT_NOT_FOUND,
    TOO_DEEP,
    child_predefined,
    passed_variables,
)
from conveyor.ci.select.predefined import NewPipeline, predefined
from conveyor.ci.select.rules import PipelineSelection, file_questions, select
from conveyor.ci.select.variables import expand
from conveyor.errors import (
    DownstreamError,
    ExprError,
    GitError,
    SelectionError,
    SpecError,
    SpecErrors,
    VariablesError,
)
from conveyor.host import git
from conveyor.model.pipeline import JobRun, JobSpec, PipelineSpec, TriggerSpec

Kind = Literal["child", "multi-project"]


@dataclass(frozen=True)
class Upstream:
    """The pipeline a trigger job belongs to, as far as its downstream pipelines need it."""

    spec: PipelineSpec
    predefined: Mapping[str, str]
    project_dir: Path
    # What GitLab knew when it read this pipeline: its pushed changes, the projects mapped to
    # local repositories, component catalogs, which project variables are masked.
    context: LoadContext
    project_variables: Mapping[str, str]  # this project's CI/CD settings usable at this ref
    child_depth: int = 0  # 1 in a child pipeline, 2 in a grandchild


@dataclass(frozen=True)
class Downstream:
    """A downstream pipeline GitLab would create, before it runs."""

    kind: Kind
    source: str  # its configuration: "ci/child.yml", "group/deploy@main"
    spec: PipelineSpec
    predefined: dict[str, str]
    selection: PipelineSelection
    project_dir: Path  # its checkout: this project's, or a clone of the other project
    variables: dict[str, str]  # its pipeline variables: what the trigger job passed
    project_variables: dict[str, str]
    child_depth: int
    context: LoadContext  # what reading its configuration knew (its own downstreams use it)
    project: str | None = None  # a multi-project pipeline's project path


def describe(trigger: TriggerSpec) -> tuple[Kind, str]:
    """What a trigger job triggers, as written (before variables are expanded)."""
    if trigger.include:
        return "child", child_source(trigger.include)
    branch = f"@{trigger.branch}" if trigger.branch else ""
    return "multi-project", f"{trigger.project}{branch}"


def find_project(projects: Mapping[str, Path], name: str) -> Path | None:
    """The local repository mapped to a GitLab project path (paths are case-insensitive)."""
    wanted = name.strip("/").casefold()
    return next((repo for path, repo in projects.items() if path.casefold() == wanted), None)


def plan_downstream(
    up: Upstream,
    job: JobSpec,
    env: Mapping[str, str],
    passed: Mapping[str, str],
    pipeline_id: int,
    *,
    artifact: ArtifactReader | None,
    checkout: Path,
) -> Downstream:
    """The downstream pipeline `pipeline_id` of trigger job `job`, whose variables are `env`
    and which passes `passed`. `artifact` reads a file of an earlier job's artifacts (None
    before anything ran). `checkout` is where a multi-project pipeline's project is cloned.
    Raises DownstreamError."""
    trigger = job.trigger
    assert trigger is not None, f"{job.name} is not a trigger job"
    if trigger.include:
        if up.child_depth >= MAX_CHILD_DEPTH:
            raise DownstreamError(
                TOO_DEEP,
                f"child pipelines nest at most {MAX_CHILD_DEPTH} levels deep (GitLab's limit), "
                "and this pipeline is already a child of a child",
            )
        kind, source = describe(trigger)
        pre = child_predefined(up.predefined, pipeline_id)
        context = replace(
            up.context,
            variables={**config_variables(pre), **up.project_variables, **passed},
            masked=up.context.masked - set(passed),
            inputs={},
            artifact=artifact,
        )
        include = trigger.include
        spec = _load(
            lambda: load_child_pipeline(include, job.name, job.where, up.project_dir, context)
        )
        project_dir, project_variables, depth, project = (
            up.project_dir,
            dict(up.project_variables),
            up.child_depth + 1,
            None,
        )
    else:
        kind = "multi-project"
        project = expand(trigger.project or "", env).strip("/")
        branch = expand(trigger.branch, env) if trigger.branch else None
        source = f"{project}@{branch}" if branch else project
        spec, pre, context = _other_project(
            up, trigger, project, branch, pipeline_id, checkout, passed
        )
        project_dir, project_variables, depth = checkout, {}, 0
    variables = {**project_variables, **passed}
    try:
        facts = file_facts(
            project_dir,
            file_questions(spec, pre, pipeline_variables=variables),
            context.changed,
        )
        selection = select(spec, pre, facts, pipeline_variables=variables)
    except (SelectionError, ExprError, GitError) as e:
        raise DownstreamError(CREATION_FAILED, str(e)) from None
    if reason := selection.empty_reason:
        raise DownstreamError(CREATION_FAILED, f"the pipeline would be empty: {reason}")
    return Downstream(
        kind=kind,
        source=source,
        spec=spec,
        predefined=pre,
        selection=selection,
        project_dir=project_dir,
        variables=dict(passed),
        project_variables=project_variables,
        child_depth=depth,
        context=replace(context, artifact=None),
        project=project,
    )


def preview_downstream(
    up: Upstream, variables: JobVariables, job: JobRun, checkout: Path
) -> Downstream:
    """The pipeline trigger job `job` would create, as far as it is known before anything
    runs (`ci graph`): its variables as GitLab knows them when it creates the pipeline, no
    dotenv reports, no artifacts (a dynamic child pipeline raises DownstreamError)."""
    spec = variables.spec.jobs[job.spec]
    assert spec.trigger is not None, f"{job.name} is not a trigger job"
    env = variables.at_creation(job)
    passed = passed_variables(spec.trigger, variables.yaml_variables(job, env), variables.pipeline)
    return plan_downstream(up, spec, env, passed, 0, artifact=None, checkout=checkout)


def _other_project(
    up: Upstream,
    trigger: TriggerSpec,
    project: str,
    branch: str | None,
    pipeline_id: int,
    checkout: Path,
    passed: Mapping[str, str],
) -> tuple[PipelineSpec, dict[str, str], LoadContext]:
    """Another project's pipeline: a clone at `branch`, its predefined variables, its file
    read with them, `passed` (its pipeline variables) and `trigger:inputs`."""
    projects = up.context.projects
    repo = find_project(projects, project)
    if repo is None:
        known = ", ".join(sorted(projects)) or "none"
        raise DownstreamError(
            PROJECT_NOT_FOUND,
            f"project '{project}' is not available offline: map it to a local git repository "
            f"with --include-project {project}=PATH (known: {known})",
        )
    try:
        git.clone_shared(repo, checkout, branch)
    except GitError as e:
        raise DownstreamError(
            CREATION_FAILED, f"cannot check out {branch or 'HEAD'} of project '{project}': {e}"
        ) from None
    server = up.predefined.get("CI_SERVER_URL", "http://localhost")
    # The clone's origin is a local path: the project's GitLab path is the mapped name.
    facts = replace(git_facts(checkout), origin_url=f"{server}/{project}.git")
    pipeline = NewPipeline(
        id=pipeline_id,
        source="pipeline",
        registry=up.predefined.get("CI_REGISTRY"),
        registry_user=up.predefined.get("CI_REGISTRY_USER"),
        registry_password=up.predefined.get("CI_REGISTRY_PASSWORD"),
    )
    try:
        pre = predefined(checkout.resolve(), facts, pipeline)
    except VariablesError as e:
        raise DownstreamError(CREATION_FAILED, str(e)) from None
    # Another project: none of this project's variables, changes or artifacts.
    context = LoadContext(
        variables={**config_variables(pre), **passed},
        inputs=dict(trigger.inputs),
        projects=projects,
        catalogs=up.context.catalogs,
    )
    return _load(lambda: load_pipeline(checkout / ".gitlab-ci.yml", context=context)), pre, context


def _load(load: Callable[[], PipelineSpec]) -> PipelineSpec:
    """A configuration GitLab refuses makes the trigger job fail: creation failed."""
    try:
        return load()
    except (SpecError, SpecErrors) as e:
        raise DownstreamError(CREATION_FAILED, f"invalid configuration: {e}") from None
