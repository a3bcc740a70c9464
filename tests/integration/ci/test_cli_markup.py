"""Text from users, files, jobs and errors is never read as Rich markup, through the real
`conveyor` command (its `main()`, in-process): square brackets survive, `[/` raises nothing,
`[bold]` stays those six characters — in errors, tables, live job output and the timeline —
and the last-resort handler still prints a line when Rich itself fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.errors import MarkupError

from conveyor.cli import output
from tests.integration.ci.cli_helpers import Cli, git_repo, table_rows

# Every awkward shape at once: a closing tag with nothing open, a style name, a list.
PIPELINE = """
stages: ["[bold]build", "st[/]"]
"build: [x, y]":
  stage: "[bold]build"
  script:
    - echo "log [/oops] [bold]x[/bold] [x, y]"
  environment:
    name: "env [/x]"
    url: "http://[::1]:8080/[/x]"
other:
  stage: "st[/]"
  script: ["echo done"]
"""
COMMIT = "fix [/] the [bold]x[/bold] [x, y]"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": PIPELINE,
            "compose.yaml": "name: shop\nservices:\n  web:\n    image: web\n",
            ".gitignore": ".conveyor/\n",
        },
        message=COMMIT,
    )


def test_errors_keep_their_brackets(tmp_path: Path, cli: Cli) -> None:
    ci = tmp_path / ".gitlab-ci.yml"
    ci.write_text('"bad [/x] [bold]y [a, b]":\n  script: 1\n')
    code, _, err = cli("ci", "lint", "--file", str(ci))
    assert code == 1, err
    assert f"error: {ci}:2: bad [/x] [bold]y [a, b].script: must be a string or a list" in err
    assert "internal error" not in err
    # the deploy commands: a compose file's error
    compose = tmp_path / "compose.yaml"
    compose.write_text('services:\n  web:\n    image: x\n    "[/k] [bold]k": 1\n')
    code, _, err = cli("-f", str(compose), "plan")
    assert code == 1, err
    assert "unknown key '[/k] [bold]k'" in err
    # an option value echoed back in the error
    code, _, err = cli("ci", "run", "--executor", "[/x]", "--file", str(ci))
    assert (code, err.strip()) == (1, "error: --executor '[/x]': choose shell or docker")


def test_job_names_stages_logs_and_urls_keep_their_brackets(repo: Path, cli: Cli) -> None:
    f = str(repo / ".gitlab-ci.yml")
    code, out, err = cli("ci", "run", "--executor", "shell", "--no-registry", "--file", f)
    assert code == 0, out + err
    # live progress (stderr) and each job's output (stdout)
    assert "▶ build: [x, y] (job 1, shell)" in err
    assert "✓ build: [x, y] success" in err
    assert "log [/oops] [bold]x[/bold] [x, y]" in out
    # the summary table and the environment line
    assert [r[:3] for r in table_rows(out)] == [
        ["build: [x, y]", "[bold]build", "success"],
        ["other", "st[/]", "success"],
    ]
    assert "environment env [/x]: deployed by build: [x, y] at http://[::1]:8080/[/x]" in out

    code, out, err = cli("ci", "show", "1", "--file", f)
    assert code == 0, err
    assert table_rows(out)[0][:3] == ["build: [x, y]", "[bold]build", "success"]

    code, out, err = cli("ci", "graph", "--file", f)
    assert code == 0, err
    assert out.splitlines() == ["[bold]build", "  build: [x, y]", "st[/]", "  other"]

    code, out, err = cli("ci", "environments", "--file", f)
    assert code == 0, err
    assert table_rows(out) == [
        ["env [/x]", "available", "http://[::1]:8080/[/x]", "build: [x, y] (#1)", ""]
    ]

    code, out, err = cli("ci", "logs", "build: [x, y]", "--file", f)
    assert code == 0, err
    assert "log [/oops] [bold]x[/bold] [x, y]" in out

    code, out, err = cli("ci", "logs", "[/nope]", "--file", f)
    assert (code, err.strip()) == (1, "error: no log for job '[/nope]'")

    # the timeline joins the commit (its subject), the pipeline and its jobs
    code, out, err = cli("-f", str(repo / "compose.yaml"), "timeline")
    assert code == 0, err
    assert COMMIT in out
    assert "build: [x, y] ([bold]build)" in out


def test_an_internal_error_is_one_line_whatever_its_message(
    repo: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.app import ci as ci_app

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom [/x] [bold]y[/bold]")

    monkeypatch.setattr(ci_app, "history", broken)
    f = str(repo / ".gitlab-ci.yml")
    code, _, err = cli("ci", "history", "--file", f)
    assert code == 2
    assert err.splitlines() == [
        "internal error: RuntimeError: boom [/x] [bold]y[/bold]",
        "this is a bug in Conveyor; set CONVEYOR_DEBUG=1 for the traceback",
    ]


def test_the_last_resort_handler_prints_even_when_rich_fails(
    repo: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.app import ci as ci_app

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no message either")

    def broken(*args: object, **kwargs: object) -> None:
        raise Unprintable

    def rich_fails(*args: object, **kwargs: object) -> None:
        raise MarkupError("closing tag '[/x]' at position 3 doesn't match any open tag")

    monkeypatch.setattr(ci_app, "history", broken)
    monkeypatch.setattr(output.err, "print", rich_fails)
    code, _, err = cli("ci", "history", "--file", str(repo / ".gitlab-ci.yml"))
    assert code == 2
    assert err.splitlines() == [
        "internal error: Unprintable: <Unprintable whose message cannot be shown>",
        "this is a bug in Conveyor; set CONVEYOR_DEBUG=1 for the traceback",
    ]
    # a Conveyor error, too
    code, _, err = cli("ci", "logs", "[/nope]", "--file", str(repo / ".gitlab-ci.yml"))
    assert (code, err.strip()) == (1, "error: no log for job '[/nope]'")
