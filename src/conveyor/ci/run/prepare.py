"""From a `.gitlab-ci.yml` and a checkout to a pipeline ready to run: load, predefined
variables (with the registry's), project variables, rules, and the job subset asked for."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from conveyor.ci.load.components import Catalog
from conveyor.ci.load.context import LoadContext, config_variables
from conveyor.ci.load.loader import load_pipeline
from conveyor.ci.run.artifacts import ArtifactManifest, ArtifactStore, artifact_store
from conveyor.ci.run.facts import file_facts, git_facts
from conveyor.ci.run.masking import validate_maskable
from conveyor.ci.select.predefined import NewPipeline, predefined
from conveyor.ci.select.rules import PipelineSelection, file_questions, select
from conveyor.ci.select.variables import slugify
from conveyor.errors import ConveyorError, SpecError
from conveyor.model.pipeline import JobRun, PipelineSpec
from conveyor.spec.compose import project_name_of
from conveyor.store.database import private_dir
from conveyor.store.db import Store


@dataclass(frozen=True)
class ProjectVariable:
    value: str
    masked: bool = False
    protected: bool = False


@dataclass(frozen=True)
class RegistryInfo:
    url: str
    user: str
    password: str


@dataclass
class Prepared:
    spec: PipelineSpec
    predefined: dict[str, str]
    selection: PipelineSelection
    project_variables: dict[str, str]
    masked: set[str] = field(default_factory=set)
    protected: bool = False
    context: LoadContext = field(default_factory=LoadContext)  # what loading it knew


def ci_state_dir(project_dir: Path) -> Path:
    """CI's working files: variables.yaml, blobs, artifacts, caches, job logs and builds."""
    return project_dir / ".conveyor" / "ci"


def project_state_dir(state_dir: Path, project: str) -> Path:
    """The CI state of another project whose pipeline a trigger job ran here (multi-project):
    its caches, logs, builds and artifacts, apart from this project's."""
    return state_dir / "projects" / slugify(project)


def kept_artifacts(state_dir: Path, job_id: int) -> tuple[ArtifactStore, ArtifactManifest | None]:
    """The store holding a job's artifacts and its manifest (None: it kept none, or they
    expired): this project's, or that of the other project whose pipeline the job ran in
    (`project_state_dir`). Job ids are unique in the project's database, so at most one
    store knows the job."""
    projects = state_dir / "projects"
    others = sorted(projects.iterdir()) if projects.is_dir() else []
    for directory in (state_dir, *others):
        store = artifact_store(directory)
        manifest = store.get(str(job_id))
        if manifest is not None:
            return store, manifest
    return artifact_store(state_dir), None


def ci_store(project_dir: Path) -> Store:
    """The project's one state database (`.conveyor/<project>/state.db`), which holds its
    pipelines beside its releases and rollouts; records of Conveyor 0.1's separate CI database
    are taken over the first time."""
    store = Store.open(project_dir / ".conveyor" / project_name_of(project_dir))
    private_dir(ci_state_dir(project_dir))  # variables.yaml, job logs
    store.adopt_pipelines(ci_state_dir(project_dir))
    return store


def default_variables_file(project_dir: Path) -> Path:
    return ci_state_dir(project_dir) / "variables.yaml"


def load_project_variables(path: Path) -> dict[str, ProjectVariable]:
    """The project's CI/CD variables (what GitLab keeps in Settings > CI/CD), kept out of git:

    ```yaml
    DEPLOY_TOKEN: {value: "s3cr3t-t0ken", masked: true, protected: true}
    LOG_LEVEL: debug
    ```
    """
    if not path.exists():
        return {}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise SpecError(
            str(path), None if line is None else line + 1, "", f"invalid YAML: {e}"
        ) from None
    if not isinstance(doc, dict):
        raise SpecError(str(path), 1, "", "must map variable names to values")
    out: dict[str, ProjectVariable] = {}
    for name, raw in doc.items():
        if isinstance(raw, dict):
            unknown = set(raw) - {"value", "masked", "protected"}
            if unknown:
                raise SpecError(str(path), None, str(name), f"unknown keys {sorted(unknown)}")
            var = ProjectVariable(
                str(raw.get("value", "")),
                bool(raw.get("masked", False)),
                bool(raw.get("protected", False)),
            )
        else:
            var = ProjectVariable(str(raw))
        if var.masked and (why := validate_maskable(var.value)):
            raise SpecError(str(path), None, str(name), f"cannot be masked: {why}")
        out[str(name)] = var
    return out


def with_needs(jobs: list[JobRun], wanted: Collection[str]) -> list[JobRun]:
    """The named jobs plus, transitively, the jobs their `needs` name."""
    by_name = {j.name: j for j in jobs}
    by_spec: dict[str, list[str]] = {}
    for j in jobs:
        by_spec.setdefault(j.spec, []).append(j.name)
    unknown = [w for w in wanted if w not in by_name and w not in by_spec]
    if unknown:
        raise ConveyorError(
            f"no such job in this pipeline: {', '.join(unknown)} (jobs: {', '.join(by_name)})"
        )
    keep: set[str] = set()
    todo = [n for w in wanted for n in ([w] if w in by_name else by_spec[w])]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(n.job for n in by_name[name].needs or () if n.job in by_name)
    return [j for j in jobs if j.name in keep]


def prepare(
    file: Path,
    *,
    pipeline_id: int,
    cli_variables: Mapping[str, str],
    variables_file: Path | None = None,
    ref: str | None = None,
    source: str = "push",
    registry: RegistryInfo | None = None,
    projects: Mapping[str, Path] | None = None,
    only: Collection[str] = (),
    changed_files: Collection[str] | None = None,
    catalogs: Sequence[Catalog] = (),
    inputs: Mapping[str, Any] | None = None,
) -> Prepared:
    """Load the pipeline with what GitLab knows when it reads it (`LoadContext`: config
    variables, pushed changes, `inputs` for a main file with a `spec:` header, projects and
    component `catalogs`), then derive its variables and select its jobs."""
    project_dir = file.parent
    pipeline = NewPipeline(
        id=pipeline_id,
        source=source,
        ref=ref,
        registry=registry.url if registry else None,
        registry_user=registry.user if registry else None,
        registry_password=registry.password if registry else None,
    )
    pre = predefined(project_dir.resolve(), git_facts(project_dir), pipeline)
    protected = pre.get("CI_COMMIT_REF_PROTECTED") == "true"
    pvars = load_project_variables(variables_file or default_variables_file(project_dir))
    usable = {k: v for k, v in pvars.items() if protected or not v.protected}
    masked = {v.value for v in usable.values() if v.masked}
    if registry:
        masked.add(registry.password)
    if token := pre.get("CI_JOB_TOKEN"):
        masked.add(token)
    pipeline_vars = {**{k: v.value for k, v in usable.items()}, **cli_variables}
    context = LoadContext(
        variables={**config_variables(pre), **pipeline_vars},
        masked=frozenset(k for k, v in usable.items() if v.masked and k not in cli_variables),
        changed=None if changed_files is None else tuple(changed_files),
        inputs=dict(inputs or {}),
        projects=dict(projects or {}),
        catalogs=tuple(catalogs),
    )
    spec = load_pipeline(file, context=context)
    questions = file_questions(spec, pre, pipeline_variables=pipeline_vars)
    facts = file_facts(project_dir, questions, changed_files)
    selection = select(spec, pre, facts, pipeline_variables=pipeline_vars)
    if only:
        selection = replace(selection, jobs=with_needs(selection.jobs, only))
    return Prepared(
        spec, pre, selection, {k: v.value for k, v in usable.items()}, masked, protected, context
    )


def registry_from_env(state_root: Path | None = None) -> Any:
    """The host's registry component (started on demand); port from CONVEYOR_REGISTRY_PORT."""
    from conveyor.runtime.registry import Registry

    port = int(os.environ.get("CONVEYOR_REGISTRY_PORT", "5000"))
    root = state_root or Path(
        os.environ.get("CONVEYOR_REGISTRY_DIR")
        or (
            Path("/var/lib/conveyor/registry")
            if os.geteuid() == 0
            else Path.home() / ".local/state/conveyor/registry"
        )
    )
    return Registry(root, port)
