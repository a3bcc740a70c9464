"""Conveyor's exception tree.

ConveyorError
├── SpecError            bad input file; carries file, line and field
├── RuntimeAdapterError  the Docker Engine refused or failed an operation
├── RouterError          HAProxy refused a configuration or a runtime command
├── RolloutError         a rollout failed (probe, crash, timeout); the executor rolls back
├── LockBusy             another Conveyor process owns the project state
└── BootstrapError       a host component could not be checked or installed

CI (conveyor.ci and its git adapter; the last section of this file):
ConveyorError
├── GitError             git could not answer (missing, timed out, a command failed)
├── ExprError            a CI expression or regular expression GitLab would reject
├── SelectionError       GitLab would refuse to create the pipeline (needs, stages, rules)
├── VariablesError       predefined variables cannot be derived as asked
├── JobSetupError        an executor could not prepare a job (runner_system_failure)
├── WorkspaceError       a path leaves the job's workspace, or its files cannot be listed
├── BlobError            a blob digest is malformed, missing or corrupt
├── ArtifactError        an artifacts manifest is unreadable or missing
├── CacheError           a cache manifest or setting is invalid
│   └── CacheKeyError    a cache key GitLab would refuse
└── SpecError
    └── ReportError      a report file a job wrote (JUnit, dotenv) is malformed

`TemporaryError` is a mix-in for errors worth retrying after `delay` seconds.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose; the CLI prints these without a traceback."""


class TemporaryError(ConveyorError):
    """A failure that may go away by itself; retry after `delay` seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class SpecError(ConveyorError):
    """An input file is wrong. Renders as `file:line: field: message` on one line."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class SpecErrors(ConveyorError):
    """Several SpecErrors found in one file; each renders on its own line."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))


class RuntimeAdapterError(ConveyorError):
    """The container runtime failed an operation."""


class RouterError(ConveyorError):
    """HAProxy rejected a configuration or a runtime API command."""


class RolloutError(ConveyorError):
    """A rollout step failed: the new release did not become healthy, crashed or timed out."""


class LockBusy(ConveyorError):
    """Another Conveyor process holds the project's lock."""


class BootstrapError(ConveyorError):
    """A host component is missing and could not be installed."""


# --- CI ---------------------------------------------------------------------------------------
# Errors of the GitLab CI engine (conveyor.ci) and of the git adapter (conveyor.host.git).


class GitError(ConveyorError):
    """git could not answer: not installed, timed out, or a command that must succeed failed.
    The message names the command and the repository."""


class ExprError(ConveyorError):
    """An expression or a pattern GitLab would reject; `position` is a 0-based offset."""

    def __init__(self, message: str, position: int, expression: str = "") -> None:
        self.message = message
        self.position = position
        self.expression = expression
        where = f" in {expression!r}" if expression else ""
        super().__init__(f"{message} at position {position}{where}")


class SelectionError(ConveyorError):
    """GitLab would refuse to create this pipeline (bad needs, unknown stage, bad expression)."""


class VariablesError(ConveyorError):
    """The predefined variables cannot be derived as asked (e.g. a tag ref that is not HEAD)."""


class JobSetupError(ConveyorError):
    """The executor could not prepare the job (image missing, service failed): GitLab's
    `runner_system_failure`, which `retry: when` can name."""


class WorkspaceError(ConveyorError):
    """A path pattern or a stored entry points outside the job's workspace, or the workspace's
    files cannot be listed."""


class BlobError(ConveyorError):
    """A digest is malformed or names no blob, or a blob's bytes do not match its name."""


class ArtifactError(ConveyorError):
    """A stored manifest is unreadable, or names a job that has no artifacts."""


class CacheError(ConveyorError):
    """A cache manifest is unreadable, or a cache setting is invalid at run time."""


class CacheKeyError(CacheError):
    """A cache key GitLab would refuse (a `/`, or only dots)."""


class ReportError(SpecError):
    """A report file a job produced is malformed; names the file (and line when known)."""
