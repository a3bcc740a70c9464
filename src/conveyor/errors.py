"""Conveyor's exception tree.

ConveyorError
├── SpecError            bad input file; carries file, line and field
├── SpecErrors           several SpecErrors of one file, one per line
├── HostError            a program on this host could not be run, supervised or validated
│   ├── CommandError     a program is missing, not executable, or did not finish in time
│   ├── DaemonError      a supervised daemon exited at start or did not become ready
│   └── ValidationFailed a validator (`haproxy -c`, `promtool check config`…) rejected a file
├── RuntimeAdapterError  the Docker Engine refused or failed an operation
│   └── EngineUnreachable the Docker Engine does not answer (stopped, restarting)
├── RegistryError        the image registry could not be started, or its port is taken
├── RouterError          HAProxy refused a configuration or a runtime command
├── ChecksError          Nagios could not be configured, started or commanded
├── MetricsError         Prometheus, Alertmanager or node exporter could not be configured,
│                        started or asked (a rejected file, a read-only data directory…)
├── RolloutError         a rollout failed (probe, crash, timeout); the executor rolls back
│   └── StepFailed       one journaled step of a rollout failed; names the step
├── PortsExhausted       no free port left in a range Conveyor assigns ports from
├── SettingError         a CONVEYOR_* setting of the environment is malformed or unsafe
├── LockBusy             another Conveyor process owns the project state
├── BootstrapError       a host component could not be checked or installed
├── StoreError           the project's state database cannot be opened
├── NoComposeFile        no -f given and no compose.yaml (or its other names) here
├── UnknownService       a command named a service the project does not have
├── NothingToRollBack    `rollback` with no earlier release
├── UnknownRef           `timeline REF` names no commit (or release) Conveyor knows
├── LogQueryError        a `conveyor logs` filter (--since, --field…) is malformed; names it
├── ServerError          the GitOps server refused a request (HTTP 400 unless below)
│   ├── NotFound             the request names nothing the server has (404)
│   │   ├── UnknownEnvironment   an environment conveyor.yaml does not have
│   │   └── UnknownToken         no active API token has that name
│   ├── ActionRefused        promote/rollback/approve… cannot be done now; says why (409)
│   └── TokenNameTaken       an active API token already has that name (409)
├── ApiError             the server's API answered a client (`conveyor env`…) with an error
│   ├── ServerUnreachable    no server answers at the address (not running, wrong address)
│   └── AccessDenied         no token, a token it does not know (401), or a role too low (403)
├── NotifyError          a notification cannot be sent (`retry` says whether trying again may
│                        help) or a channel cannot be set up (a secret's variable is unset)
├── ShipError            log shipping cannot be set up or take a batch (a secret's variable is
│                        unset, its buffer is held by another process or cannot be written)
├── AlertsError          Alertmanager could not be asked for its alerts (`conveyor alerts`)
└── BackupError          a backup, restore or verification failed (no key, the store, a dump)
    └── BackupCorrupt    a stored backup fails authentication or its digest: not restorable

CI (conveyor.ci and its git adapter; the last section of this file):
ConveyorError
├── GitError             git could not answer (missing, timed out, a command failed)
├── ExprError            a CI expression or regular expression GitLab would reject
├── SelectionError       GitLab would refuse to create the pipeline (needs, stages, rules)
├── DownstreamError      a trigger job cannot create its downstream pipeline (GitLab's reason)
├── VariablesError       predefined variables cannot be derived as asked
├── JobSetupError        an executor could not prepare a job (runner_system_failure)
├── WorkspaceError       a path leaves the job's workspace, or its files cannot be listed
├── BlobError            a blob digest is malformed, missing or corrupt
├── ArtifactError        an artifacts manifest is unreadable or missing
├── CacheError           a cache manifest or setting is invalid
│   └── CacheKeyError    a cache key GitLab would refuse
└── SpecError
    └── ReportError      a report file a job wrote (JUnit, dotenv) is malformed

GitOps (conveyor.gitops; the last section of this file):
ConveyorError
├── SourceError          a git source could not be fetched, read, checked out or pushed to
└── HookRejected         a webhook delivery is refused or ignored; carries the HTTP status

Adapters translate the `HostError`s of the programs they drive into their own class
(HAProxy's into `RouterError`, Nagios's into `ChecksError`, docker-registry's into
`RegistryError`, dockerd's into `BootstrapError`), so a caller catches one class per component.

Not in the tree: the parsers under `conveyor.spec` raise `ValueError` (`InterpolationError`
among them) for one bad value; the loader turns each into a `SpecError` that points at the file,
line and field, so they never reach a user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from conveyor.plan.actions import Step


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose; the CLI prints these without a traceback."""


# ---- input files -------------------------------------------------------------------------------


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


# ---- programs on this host (conveyor.host) -----------------------------------------------------


class HostError(ConveyorError):
    """A program on this host could not be run, supervised or validated."""


CommandProblem = Literal["not found", "not runnable", "timed out"]


class CommandError(HostError):
    """A program could not be run to the end: it is not installed (or not on PATH), cannot be
    executed, or did not finish in time. `problem` says which; the message says what to do."""

    def __init__(self, argv: tuple[str, ...], problem: CommandProblem, message: str) -> None:
        super().__init__(message)
        self.argv = argv
        self.problem = problem


class DaemonError(HostError):
    """A supervised daemon exited while starting or did not become ready in time. The message
    ends with what its log says (or where the log is)."""


class ValidationFailed(HostError):
    """A validator rejected a rendered file; `messages` are the validator's own lines."""

    def __init__(self, message: str, messages: tuple[str, ...]) -> None:
        super().__init__(message)
        self.messages = messages


# ---- components Conveyor drives ----------------------------------------------------------------


class RuntimeAdapterError(ConveyorError):
    """The container runtime failed an operation."""


class EngineUnreachable(RuntimeAdapterError):
    """The Docker Engine does not answer: stopped, or restarting (an upgrade, a crash)."""


class RegistryError(ConveyorError):
    """The image registry could not be started or read, or its port is held by something else."""


class RouterError(ConveyorError):
    """HAProxy rejected a configuration or a runtime API command."""


class ChecksError(ConveyorError):
    """Nagios (the infrastructure checks) rejected its configuration, could not be started, or
    did not take an external command; or a check asked for does not exist."""


class MetricsError(ConveyorError):
    """Prometheus, Alertmanager or node exporter could not be configured, started or asked."""


# ---- rollouts and project state (conveyor.deploy) ----------------------------------------------


class RolloutError(ConveyorError):
    """A rollout step failed: the new release did not become healthy, crashed or timed out."""


class StepFailed(RolloutError):
    """One step of a rollout failed; `step` and `seq` say which, `reason` why. The engine then
    applies the service's failure_action (roll back, pause or continue)."""

    def __init__(self, step: Step, seq: int, message: str) -> None:
        super().__init__(f"{step.describe()}: {message}")
        self.step = step
        self.seq = seq
        self.reason = message


class PortsExhausted(ConveyorError):
    """Every port of a range Conveyor assigns from is taken on 127.0.0.1."""

    def __init__(self, what: str, low: int, high: int) -> None:
        super().__init__(
            f"no free port left for {what} in {low}-{high} on 127.0.0.1: stop the processes "
            f"that listen there (`ss -ltnp 'sport >= {low} and sport <= {high}'` lists them) "
            "or remove stacks you no longer need (`conveyor down`)"
        )
        self.what = what
        self.low = low
        self.high = high


class SettingError(ConveyorError):
    """A setting read from the environment (CONVEYOR_SUBNET_POOL…) is malformed or unsafe."""


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


class LogQueryError(ConveyorError):
    """A log search filter is malformed; `option` names it (`--since`, `since`)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.reason = message


class UnknownRef(ConveyorError):
    """`timeline REF` names nothing git or the state knows."""


# ---- the GitOps server (conveyor.server and its use cases) -------------------------------------


class ServerError(ConveyorError):
    """The server refused a request; the API answers with the subclass's status code."""


class NotFound(ServerError):
    """The request names an environment, pipeline, job, release or token the server does not
    have (HTTP 404)."""


class UnknownEnvironment(NotFound):
    """A request named an environment the server does not know."""


class ActionRefused(ServerError):
    """An action cannot be done now: a gate is not met, nothing to roll back to, the
    environment is suspended… (HTTP 409). The message says why."""


class UnknownToken(NotFound):
    """No active API token has this name."""


class TokenNameTaken(ServerError):
    """An active API token already has this name."""


class ApiError(ConveyorError):
    """The server's API answered a client with an error it has no closer class for; `status`
    is the HTTP status (0 when nothing answered). 404 and 409 answers become `NotFound` and
    `ActionRefused` with the server's reason, as on the server's side."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ServerUnreachable(ApiError):
    """No Conveyor server answers at the address: not running, or another address."""


class AccessDenied(ApiError):
    """401 (no token, or one the server does not know) or 403 (the token's role is too low);
    the message says which role the request needs."""


class AlertsError(ConveyorError):
    """Alertmanager did not answer its API, or answered what is not a list of alerts."""


class NotifyError(ConveyorError):
    """A webhook, mail server or GitLab did not take a notification. `retry` is True when the
    cause may pass (a timeout, a refused connection, a 5xx or 429 answer, a 4xx SMTP reply)."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class ShipError(ConveyorError):
    """Log shipping (observe.logs.ship) cannot be set up, or its on-disk buffer cannot take a
    batch: a secret's variable is unset, another process holds the buffer, the disk is full."""


# --- CI ---------------------------------------------------------------------------------------
# Errors of the GitLab CI engine (conveyor.ci) and of the git adapter (conveyor.host.git).


class GitError(HostError):
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


class DownstreamError(ConveyorError):
    """A trigger job cannot create its downstream pipeline; `reason` is GitLab's failure
    reason for the trigger job (`downstream_pipeline_creation_failed`…)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


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


# --- GitOps -----------------------------------------------------------------------------------
# Errors of the git sources and webhooks of the GitOps server (conveyor.gitops).


class SourceError(ConveyorError):
    """A git source could not be fetched, read, checked out or pushed to. The message names the
    source by its URL without credentials and ends with git's own words."""


class HookRejected(ConveyorError):
    """A webhook delivery that is not acted on: `status` is the HTTP answer (401 wrong or
    missing secret, 400 malformed, 413 too large, 202 accepted but ignored), `reason` why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class AwsError(ConveyorError):
    """The AWS template cannot be rendered as asked, or CloudFormation refused or rolled back
    a change (the message names the resource and the reason AWS gave)."""


class BackupError(ConveyorError):
    """A backup, restore or verification could not be done: no destination or key, the
    store refused, a dump or copy failed (the message says which service and why)."""


class BackupCorrupt(BackupError):
    """A stored backup does not decrypt, authenticate or match its manifest's digest: it
    cannot be restored."""
