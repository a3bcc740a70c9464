"""One writer: what a local command does with a project a `conveyor server` manages.

Pure (`app.ownership` finds the owner and whether it runs). The server is the project's
writer (it deploys what git says and corrects drift), so a local command that would change
the project is refused and told the server's way to do it; where the API has the same action
and the server runs (`rollback` is `rollback --env`, `status` is `env status`), the command
goes through the API instead. `--force` acts on the project anyway. A project no server
manages is the CLI's, as always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from conveyor.model.ownership import ServerOwner

# The local commands that look at ownership: every one that changes the project, and
# `status`, the one reading the API answers as well.
Command = Literal["up", "deploy", "rollback", "down", "agent", "status"]
# local: go on as usual; api: do it through the server's API; refuse: exit 2 with `message`;
# force: go on locally, behind the server (warn with `message`).
Verdict = Literal["local", "api", "refuse", "force"]
WRITES: frozenset[Command] = frozenset({"up", "deploy", "rollback", "down", "agent"})
REFUSED_EXIT = 2  # the exit code of a refused command (1 is a command that failed)


@dataclass(frozen=True)
class WriterDecision:
    verdict: Verdict
    message: str = ""  # what to tell the user (empty: nothing)
    hint: str = ""  # a second, dimmer line


def decide(
    owner: ServerOwner | None,
    command: Command,
    *,
    running: bool,
    force: bool = False,
    service: str | None = None,
) -> WriterDecision:
    """What `command` does with a project `owner` manages (None: no server does).
    `running`: the owner's process is alive; `service`: the one service a `rollback` names."""
    if owner is None:
        return WriterDecision("local")
    where = _managed(owner)
    if command not in WRITES:  # status: read it through the server when it runs
        if running:
            return WriterDecision("api", f"{where}: showing its view (`{_status(owner)}`)")
        return WriterDecision(
            "local", f"{where}, which is not running ({_gone(owner)}): showing this host's view"
        )
    if force:
        state = "running" if running else f"not running: {_gone(owner)}"
        return WriterDecision(
            "force",
            f"--force: acting on project {owner.project} behind the Conveyor server at "
            f"{owner.server_url} (environment {owner.environment}, {state})",
            "the server is not told: git no longer says what runs "
            f"(`conveyor diff --env {owner.environment}` shows it), the server's drift "
            "correction may undo part of this, and its next deploy replaces it",
        )
    if running and command == "rollback" and service is None:
        return WriterDecision(
            "api",
            f"{where}: rolling it back through the server, as "
            f"`conveyor rollback --env {owner.environment}` does",
        )
    instead = equivalent(owner, command, service)
    hint = "--force acts on the project anyway, behind the server (docs/server.md, One writer)"
    if running:
        return WriterDecision("refuse", f"{where}: {instead}", hint)
    return WriterDecision(
        "refuse",
        f"{where}, which is not running ({_gone(owner)}): start it again "
        f"(`conveyor server --source {owner.source} --data {owner.data_dir}`), then "
        f"{instead}; or pass --force to take the project over from the CLI",
        "the server still owns the project: once started, it corrects drift and deploys the "
        "next commit over what the CLI did meanwhile",
    )


def equivalent(owner: ServerOwner, command: Command, service: str | None = None) -> str:
    """The server's way to do what `command` would do locally, as advice."""
    env = owner.environment
    if command in ("up", "deploy"):
        if owner.branch is not None:
            return f"push to {owner.branch} instead (the server deploys every commit on it)"
        if owner.promote_from is not None:
            return f"use `conveyor promote {env} --from {owner.promote_from}`"
        return f"see `{_status(owner)}` (the server deploys it)"
    if command == "rollback":
        whole = " (it rolls the whole environment back)" if service is not None else ""
        return f"use `conveyor rollback --env {env}`{whole}"
    if command == "down":
        return (
            f"use `conveyor suspend {env}` (stops its deploys and drift correction; the "
            "server does not stop an environment's containers)"
        )
    if command == "agent":
        return f"no agent is needed: the server corrects its drift (`{_status(owner)}`)"
    return f"use `{_status(owner)}`"


def _managed(owner: ServerOwner) -> str:
    return (
        f"project {owner.project} is managed by the Conveyor server at {owner.server_url} "
        f"(environment {owner.environment})"
    )


def _status(owner: ServerOwner) -> str:
    return f"conveyor env status {owner.environment}"


def _gone(owner: ServerOwner) -> str:
    return f"its process {owner.pid} is gone"
