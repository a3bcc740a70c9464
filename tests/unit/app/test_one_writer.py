"""The one-writer decision (`app.one_writer.decide`): what a local command does with a project
a `conveyor server` manages. Pure: an owner record, whether its process runs, the command."""

from __future__ import annotations

import pytest

from conveyor.app.one_writer import Command, Verdict, decide, equivalent
from conveyor.model.ownership import ServerOwner


def owner(**changes: object) -> ServerOwner:
    base = ServerOwner(
        project="shop-staging",
        environment="staging",
        server_url="http://127.0.0.1:7780",
        pid=4242,
        pid_start=100,
        data_dir="/srv/conveyor",
        source="/srv/git/shop.git",
        branch="main",
        work_tree="/srv/conveyor/environments/staging/shop",
        compose_files=("/srv/conveyor/environments/staging/shop/compose.yaml",),
        state_dir="/srv/conveyor/environments/staging/shop/.conveyor/shop-staging",
    )
    return base.model_copy(update=changes)


WRITES: list[Command] = ["up", "deploy", "rollback", "down", "agent"]


@pytest.mark.parametrize("command", [*WRITES, "status"])
@pytest.mark.parametrize("force", [False, True])
def test_a_project_no_server_manages_is_the_clis(command: Command, force: bool) -> None:
    d = decide(None, command, running=False, force=force)
    assert d.verdict == "local" and d.message == ""


@pytest.mark.parametrize(
    ("command", "service", "running", "force", "verdict"),
    [
        # the server runs: what the API can do goes there, the rest is refused
        ("rollback", None, True, False, "api"),
        ("rollback", "web", True, False, "refuse"),  # the API rolls the whole environment
        ("deploy", None, True, False, "refuse"),
        ("up", None, True, False, "refuse"),
        ("down", None, True, False, "refuse"),
        ("agent", None, True, False, "refuse"),
        ("status", None, True, False, "api"),
        # the server is stopped: still its project; nothing to route to
        ("rollback", None, False, False, "refuse"),
        ("deploy", None, False, False, "refuse"),
        ("down", None, False, False, "refuse"),
        ("status", None, False, False, "local"),
        # --force acts locally, running or not
        ("deploy", None, True, True, "force"),
        ("rollback", None, True, True, "force"),
        ("rollback", "web", False, True, "force"),
        ("down", None, False, True, "force"),
    ],
)
def test_what_a_command_does_with_a_managed_project(
    command: Command, service: str | None, running: bool, force: bool, verdict: Verdict
) -> None:
    assert decide(owner(), command, running=running, force=force, service=service).verdict == (
        verdict
    )


def test_a_refusal_names_the_project_the_server_the_environment_and_the_server_command() -> None:
    d = decide(owner(), "rollback", running=True, service="web")
    assert d.message == (
        "project shop-staging is managed by the Conveyor server at http://127.0.0.1:7780 "
        "(environment staging): use `conveyor rollback --env staging` (it rolls the whole "
        "environment back)"
    )
    assert "--force" in d.hint


def test_a_stopped_server_is_said_stopped_and_force_offered() -> None:
    d = decide(owner(), "deploy", running=False)
    assert d.verdict == "refuse"
    assert "which is not running (its process 4242 is gone)" in d.message
    assert "conveyor server --source /srv/git/shop.git --data /srv/conveyor" in d.message
    assert "push to main instead" in d.message
    assert "pass --force to take the project over" in d.message


def test_force_warns_that_the_server_is_not_told() -> None:
    d = decide(owner(), "deploy", running=True, force=True)
    assert d.message.startswith("--force: acting on project shop-staging behind the Conveyor")
    assert "running" in d.message
    assert "git no longer says what runs (`conveyor diff --env staging` shows it)" in d.hint


def test_routing_says_which_server_command_it_is() -> None:
    d = decide(owner(), "rollback", running=True)
    assert d.message.endswith("as `conveyor rollback --env staging` does")
    assert "conveyor env status staging" in decide(owner(), "status", running=True).message


@pytest.mark.parametrize(
    ("command", "changes", "advice"),
    [
        ("deploy", {}, "push to main instead (the server deploys every commit on it)"),
        (
            "up",
            {"environment": "production", "branch": None, "promote_from": "staging"},
            "use `conveyor promote production --from staging`",
        ),
        ("down", {}, "use `conveyor suspend staging`"),
        ("agent", {}, "no agent is needed: the server corrects its drift"),
        ("rollback", {}, "use `conveyor rollback --env staging`"),
    ],
)
def test_the_server_way_of_each_command(
    command: Command, changes: dict[str, object], advice: str
) -> None:
    assert equivalent(owner(**changes), command).startswith(advice)
