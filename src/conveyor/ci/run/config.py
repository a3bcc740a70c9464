"""How `conveyor ci run` runs a pipeline: executor, variables, masking, concurrency, limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from conveyor.ci.load.context import LoadContext

ExecutorName = Literal["shell", "docker"]
DEFAULT_TIMEOUT = 3600.0  # GitLab's default job timeout: 1 hour
AFTER_SCRIPT_TIMEOUT = 300.0  # GitLab: after_script has its own 5 minute limit
DEFAULT_IMAGE = "python:3.11-slim-bookworm"  # the runner's default image (runner config)


@dataclass
class RunConfig:
    project_dir: Path
    state_dir: Path
    executor: ExecutorName = "docker"
    cli_variables: dict[str, str] = field(default_factory=dict)
    project_variables: dict[str, str] = field(default_factory=dict)
    masked: set[str] = field(default_factory=set)  # values to mask, whatever prints them
    play: tuple[str, ...] = ()
    concurrency: int = 2
    default_image: str = DEFAULT_IMAGE
    default_timeout: float = DEFAULT_TIMEOUT
    protected_ref: bool = False
    keep_workspaces: bool = False
    auto_cancel: bool = True  # cancel older redundant pipelines of the same branch
    # What GitLab knew when it read the pipeline (pushed changes, projects mapped with
    # `--include-project`, component catalogs): downstream pipelines are read with it too.
    context: LoadContext = field(default_factory=LoadContext)
    # The environment of the process that runs the pipeline, which shell jobs start from (as
    # GitLab Runner's shell executor passes its own); None: this process's environment.
    host_env: Mapping[str, str] | None = None
