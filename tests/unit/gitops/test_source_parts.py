"""The pure parts of git sources: which kind a URL is, how it is shown, and which line of
git's stderr is worth a person's attention."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SourceError
from conveyor.gitops.source import SshAccess, redact, url_kind, useful_line


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("/srv/git/shop.git", "path"),
        ("../shop", "path"),
        ("file:///srv/git/shop.git", "file"),
        ("git://127.0.0.1:9418/shop.git", "git"),
        ("ssh://git@127.0.0.1:2222/srv/shop.git", "ssh"),
        ("git@gitlab.example.test:team/shop.git", "ssh"),
        ("gitlab.example.test:/srv/shop.git", "ssh"),
        ("./odd:name", "path"),
        ("https://gitlab.example.test/team/shop.git", "https"),
        ("HTTP://127.0.0.1:8080/shop.git", "http"),
    ],
)
def test_url_kinds(url: str, kind: str) -> None:
    assert url_kind(url) == kind


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/pwned", "ftp://host/shop.git"])
def test_urls_git_would_run_a_program_for_or_cannot_fetch_are_refused(url: str) -> None:
    with pytest.raises(SourceError, match="unsupported source URL"):
        url_kind(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://ci-bot:glpat-XYZ@gitlab.test/team/shop.git",
            "https://***@gitlab.test/team/shop.git",
        ),
        (
            "https://ghp_TOKEN@github.com:443/team/shop.git",
            "https://***@github.com:443/team/shop.git",
        ),
        ("https://gitlab.test/team/shop.git", "https://gitlab.test/team/shop.git"),
        ("ssh://git@127.0.0.1:2222/srv/shop.git", "ssh://git@127.0.0.1:2222/srv/shop.git"),
        ("/srv/git/shop.git", "/srv/git/shop.git"),
    ],
)
def test_credentials_are_never_shown(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (
            "git@127.0.0.1: Permission denied (publickey).\r\n"
            "fatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\nand the repository exists.\n",
            "git@127.0.0.1: Permission denied (publickey). / "
            "fatal: Could not read from remote repository.",
        ),
        (
            "To /srv/shop.git\n ! [rejected]        main -> main (fetch first)\n"
            "error: failed to push some refs to '/srv/shop.git'\n"
            "hint: Updates were rejected because the remote contains work that you do\n",
            "! [rejected]        main -> main (fetch first) / "
            "error: failed to push some refs to '/srv/shop.git'",
        ),
        (
            "fatal: '/srv/x' does not appear to be a git repository\n",
            "fatal: '/srv/x' does not appear to be a git repository",
        ),
        ("something odd\nlast words\n", "last words"),
        ("", "git gave no reason"),
    ],
)
def test_the_useful_line_of_git_stderr(stderr: str, line: str) -> None:
    assert useful_line(stderr) == line


def test_ssh_never_prompts_and_trusts_only_the_given_host_keys() -> None:
    command = SshAccess(Path("/keys/deploy"), Path("/keys/known_hosts")).command()

    assert command == (
        "ssh -F /dev/null -i /keys/deploy -o IdentitiesOnly=yes "
        "-o UserKnownHostsFile=/keys/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
    )
