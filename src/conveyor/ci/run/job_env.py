"""The variables each job of a pipeline sees, merged in GitLab's precedence (see
`conveyor.ci.select.variables.Layer`) and expanded: predefined, YAML, workflow, rules, dotenv
reports of the jobs it depends on, project and pipeline variables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conveyor.ci.select.predefined import (
    environment_variables,
    job_identity,
    job_variables,
)
from conveyor.ci.select.rules import PipelineSelection
from conveyor.ci.select.variables import Layer, expand, expand_all, merge_precedence
from conveyor.model.pipeline import JobRun, JobSpec, PipelineSpec


class JobVariables:
    """One pipeline's variable layers, ready to give each of its jobs its variables."""

    def __init__(
        self,
        spec: PipelineSpec,
        selection: PipelineSelection,
        predefined: Mapping[str, str],
        *,
        project: Mapping[str, str],
        pipeline: Mapping[str, str],
        project_dir: Path,
    ) -> None:
        self.spec = spec
        self.workflow = selection.workflow_variables
        self.project = project
        self.pipeline = pipeline
        self.project_dir = project_dir
        self.predefined = self._with_pipeline_name(predefined)

    def _with_pipeline_name(self, predefined: Mapping[str, str]) -> Mapping[str, str]:
        """GitLab's CI_PIPELINE_NAME: `workflow:name` expanded with the predefined, top-level,
        workflow:rules, project and pipeline variables."""
        if not self.spec.workflow.name:
            return predefined
        known = merge_precedence(
            {
                Layer.PREDEFINED: predefined,
                Layer.YAML_GLOBAL: {k: v.value for k, v in self.spec.variables.items()},
                Layer.WORKFLOW_RULES: self.workflow,
                Layer.PROJECT: self.project,
                Layer.PIPELINE: self.pipeline,
            }
        )
        raw = {k for k, v in self.spec.variables.items() if not v.expand}
        name = expand(self.spec.workflow.name, expand_all(known, raw))
        return {**predefined, "CI_PIPELINE_NAME": name}

    def for_attempt(
        self,
        job: JobRun,
        job_id: int,
        workspace: Path,
        in_container: bool,
        dotenv: Mapping[str, str],
    ) -> dict[str, str]:
        """The variables of one attempt of `job`, expanded. `workspace` is its copy of the
        checkout on this host (`CI_PROJECT_DIR` unless it runs `in_container`); `dotenv` holds
        the dotenv report variables of the jobs it depends on."""
        pre = dict(self.predefined)
        project_url = self.predefined.get("CI_PROJECT_URL", "")
        pre.update(job_variables(job, job_id, project_url=project_url))
        build_dir = f"/builds/{self.predefined.get('CI_PROJECT_PATH', 'local/project')}"
        pre["CI_PROJECT_DIR"] = build_dir if in_container else str(workspace)
        # `conveyor` deploys from this job keep their state with the project, not in the
        # job's throw-away workspace, so later jobs (stop a review app) and the user see it.
        pre["CONVEYOR_STATE_HOME"] = str(self.project_dir / ".conveyor")
        pre["CI_BUILDS_DIR"] = "/builds" if in_container else str(workspace.parent)
        return self._expanded(job, pre, dotenv)

    def at_creation(self, job: JobRun) -> dict[str, str]:
        """The job's variables as GitLab knows them when it creates the pipeline: no job id,
        workspace or dotenv reports yet."""
        return self._expanded(job, {**self.predefined, **job_identity(job)}, {})

    def _expanded(
        self, job: JobRun, pre: dict[str, str], dotenv: Mapping[str, str]
    ) -> dict[str, str]:
        """Every layer merged in GitLab's precedence over the predefined `pre`, expanded."""
        js = self.spec.jobs[job.spec]
        glob, workflow = self._inherited(js)
        raw = {k for k, v in self.spec.variables.items() if not v.expand}
        raw |= {k for k, v in js.variables.items() if not v.expand}
        layers: dict[Layer, Mapping[str, str]] = {
            Layer.PREDEFINED: pre,
            Layer.YAML_GLOBAL: glob,
            Layer.WORKFLOW_RULES: workflow,
            Layer.YAML_JOB: {k: v.value for k, v in js.variables.items()},
            Layer.RULES: job.variables,
            Layer.DOTENV: dotenv,
            Layer.PROJECT: self.project,
            Layer.PIPELINE: self.pipeline,
        }
        expanded = expand_all(merge_precedence(layers), raw)
        if js.environment is None:
            return expanded
        # CI_ENVIRONMENT_* are predefined variables made from the expanded environment name;
        # other variables may refer to them, so merge and expand once more.
        pre.update(environment_variables(js.environment, expanded))
        return expand_all(merge_precedence(layers), raw)

    def _inherited(self, js: JobSpec) -> tuple[dict[str, str], dict[str, str]]:
        """The top-level and workflow:rules variables `js` inherits: GitLab merges
        workflow:rules:variables into the top-level ones, and `inherit:variables` filters both."""
        glob = {k: v.value for k, v in self.spec.variables.items()}
        workflow = dict(self.workflow)
        if js.inherit_variables is False:
            return {}, {}
        if isinstance(js.inherit_variables, tuple):
            keep = js.inherit_variables
            glob = {k: v for k, v in glob.items() if k in keep}
            workflow = {k: v for k, v in workflow.items() if k in keep}
        return glob, workflow

    def yaml_variables(self, job: JobRun, expanded: Mapping[str, str]) -> dict[str, str]:
        """What `.gitlab-ci.yml` gives `job`: the top-level and workflow:rules variables it
        inherits, its own, its matrix and rule values, each expanded with the job's
        `expanded` variables. A trigger job passes these downstream, where they are expanded
        again: `expand: false` ones are passed with `$` escaped (`$$`), so they stay as
        written."""
        js = self.spec.jobs[job.spec]
        glob, workflow = self._inherited(js)
        own = {
            k: v for k, v in job.variables.items() if k not in ("CI_NODE_INDEX", "CI_NODE_TOTAL")
        }
        written = merge_precedence(
            {
                Layer.YAML_GLOBAL: glob,
                Layer.WORKFLOW_RULES: workflow,
                Layer.YAML_JOB: {k: v.value for k, v in js.variables.items()},
                Layer.RULES: own,
            }
        )
        raw = {k for k, v in self.spec.variables.items() if not v.expand}
        raw |= {k for k, v in js.variables.items() if not v.expand}
        return {
            k: v.replace("$", "$$") if k in raw else expand(v, expanded) for k, v in written.items()
        }

    def resource_group(self, job: JobRun) -> str | None:
        """The job's `resource_group` with the variables GitLab knows when it creates the
        pipeline expanded (`deploy-$CI_ENVIRONMENT_SLUG`, `cluster-$CI_NODE_INDEX`)."""
        group = self.spec.jobs[job.spec].resource_group
        if not group:
            return None
        return expand(group, self.at_creation(job)) or None
