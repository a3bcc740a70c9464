"""One attempt of a job, as its collaborators (files, executors, the job runner) share it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.ci.run.config import ExecutorName
from conveyor.model.pipeline import JobRun, JobSpec


@dataclass(frozen=True)
class Attempt:
    job: JobRun
    spec: JobSpec  # the job's definition (`job.spec` names it)
    job_id: int  # the attempt's record
    number: int  # 1 for the first attempt, 2 for the first retry...
    executor: ExecutorName
    build: Path  # this attempt's directory: the workspace and the scripts
    env: dict[str, str]  # its variables, expanded

    @property
    def workspace(self) -> Path:
        return self.build / "ws"

    @property
    def scripts(self) -> Path:
        return self.build / "scripts"
