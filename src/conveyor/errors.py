"""Conveyor's exception tree.

ConveyorError
├── SpecError            bad input file; carries file, line and field
├── RuntimeAdapterError  the Docker Engine refused or failed an operation
├── RouterError          HAProxy refused a configuration or a runtime command
├── RolloutError         a rollout failed (probe, crash, timeout); the executor rolls back
├── LockBusy             another Conveyor process owns the project state
└── BootstrapError       a host component could not be checked or installed

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


class StoreError(ConveyorError):
    """The project's state database cannot be opened or written."""


class UnknownService(ConveyorError):
    """A command named a service the compose file (or release) does not have."""


class NothingToRollBack(ConveyorError):
    """`rollback` with no earlier release to go back to."""


class NoComposeFile(ConveyorError):
    """No compose file was given and none of the default names is present."""


class UnknownRef(ConveyorError):
    """`timeline REF` names nothing git or the state knows."""
