"""What loading a pipeline may know besides its files: GitLab's "config variables", the
pushed changes, the inputs given to the main file, and where projects and components live.

GitLab reads `include:` (its rules, its variables, its `inputs` functions) while it creates the
pipeline, before any job exists: only the variables known then count. `config_variables` picks
them from the predefined ones, the way GitLab's `Ci::Variables::Builder#config_variables` does;
the caller adds project and pipeline variables on top.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.ci.load.components import Catalog

# Reads one file of a job's artifacts (job name, path) for `trigger: include: artifact:`.
ArtifactReader = Callable[[str, str], str]

# Predefined variables GitLab knows when it reads the configuration: the project's, the
# server's and the pipeline's (not a job's, the runner's, nor those set once the pipeline is
# saved such as CI_PIPELINE_ID and CI_PIPELINE_URL, nor the user's GITLAB_USER_*).
_CONFIG_NAMES = frozenset(
    {
        "CI",
        "GITLAB_CI",
        "CI_API_V4_URL",
        "CI_API_GRAPHQL_URL",
        "CI_CONFIG_PATH",
        "CI_DEFAULT_BRANCH",
        "CI_PAGES_DOMAIN",
        "CI_PAGES_URL",
        "CI_REGISTRY",
        "CI_REGISTRY_IMAGE",
        "CI_TEMPLATE_REGISTRY_HOST",
        "CI_PIPELINE_IID",
        "CI_PIPELINE_SOURCE",
        "CI_PIPELINE_CREATED_AT",
        "CI_PIPELINE_NAME",
        "CI_PIPELINE_TRIGGERED",
        "CI_OPEN_MERGE_REQUESTS",
        "CI_DEPLOY_FREEZE",
        "CI_KUBERNETES_ACTIVE",
    }
)
_CONFIG_PREFIXES = ("CI_SERVER", "CI_PROJECT_", "CI_COMMIT_", "CI_MERGE_REQUEST_")
_NOT_CONFIG = frozenset({"CI_PROJECT_DIR"})  # the runner's checkout directory


def config_variables(predefined: Mapping[str, str]) -> dict[str, str]:
    """The predefined variables `include` (rules, locations, `expand_vars`) can use."""
    return {
        name: value
        for name, value in predefined.items()
        if (name in _CONFIG_NAMES or name.startswith(_CONFIG_PREFIXES)) and name not in _NOT_CONFIG
    }


@dataclass(frozen=True)
class LoadContext:
    """Everything `load_pipeline` reads besides files.

    `variables`: config variables (`config_variables` of the predefined ones, then project and
    pipeline variables, later winning); `masked` names those `expand_vars` must refuse.
    `changed`: the pushed changes for `include: rules: changes` (None: nothing to compare, so
    `changes` holds, as for a new branch, a tag or a web run). `inputs`: the pipeline's inputs,
    for a main file with a `spec:inputs` header. `projects` maps GitLab project paths to local
    git repositories (`include: project`), `catalogs` say where components are found.
    `artifact` reads a job's artifact for `trigger: include: artifact` (None elsewhere)."""

    variables: Mapping[str, str] = field(default_factory=dict)
    masked: frozenset[str] = frozenset()
    changed: tuple[str, ...] | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    projects: Mapping[str, Path] = field(default_factory=dict)
    catalogs: tuple[Catalog, ...] = ()
    artifact: ArtifactReader | None = None
