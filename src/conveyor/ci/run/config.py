"""How `conveyor ci run` runs a pipeline: executor, variables, masking, concurrency, limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
    # GitLab projects on this machine (`--include-project`): includes and multi-project triggers
    projects: Mapping[str, Path] = field(default_factory=dict)
    changed_files: tuple[str, ...] | None = None  # the push's changes (child pipelines' rules)
