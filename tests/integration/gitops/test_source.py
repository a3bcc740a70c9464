"""Git sources against real repositories: by path, file://, git:// (git daemon) and ssh://
(sshd with a deploy key), all on this machine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conveyor.errors import SourceError
from conveyor.gitops.source import Source, SshAccess
from conveyor.testing.net import free_port

from .conftest import GitDaemon, HttpGitServer, SshServer, Upstream, sh


def test_path_source_fetches_new_commits_and_reads_them(upstream: Upstream, tmp_path: Path) -> None:
    source = Source(str(upstream.bare), tmp_path / "cache")

    first = source.fetch()
    assert first.changed == {"refs/heads/main": (None, upstream.first)}
    assert source.heads() == {"main": upstream.first}
    assert source.fetch().changed == {}  # nothing new: nothing moved

    second = upstream.work.commit(
        {"compose.yaml": "services:\n  web:\n    image: shop:2\n"}, "Two\n\nBody"
    )
    upstream.work.push("main")
    fetched = source.fetch()

    assert fetched.changed == {"refs/heads/main": (upstream.first, second)}
    assert fetched.branches == {"main": second}
    info = source.commit(second)
    assert (info.sha, info.author, info.message, info.parents) == (
        second,
        "Dev One <dev@example.test>",
        "Two\n\nBody\n",
        (upstream.first,),
    )
    assert info.committed_at.endswith("Z")
    assert source.is_ancestor(upstream.first, second)
    assert not source.is_ancestor(second, upstream.first)
    assert source.read_file(second, "compose.yaml") == "services:\n  web:\n    image: shop:2\n"
    assert (
        source.read_file(upstream.first, "compose.yaml") == "services:\n  web:\n    image: shop:1\n"
    )
    assert source.read_file(second, "no-such-file") is None


def test_checkout_is_a_clean_tree_of_that_commit(upstream: Upstream, tmp_path: Path) -> None:
    second = upstream.work.commit({"app/main.py": "print('v2')\n"}, "Two")
    upstream.work.push("main")
    source = Source(str(upstream.bare), tmp_path / "cache")
    source.fetch()

    old = source.checkout(upstream.first, tmp_path / "co" / "first")
    new = source.checkout(second, tmp_path / "co" / "second")

    assert not (old / "app").exists()
    assert (new / "app" / "main.py").read_text() == "print('v2')\n"
    assert sh("git", "rev-parse", "HEAD", cwd=new) == second
    assert sh("git", "status", "--porcelain", cwd=new) == ""
    with pytest.raises(SourceError, match="the directory is not empty"):
        source.checkout(second, new)

    source.remove_checkout(new)
    assert not new.exists()
    assert str(new) not in sh("git", "worktree", "list", cwd=source.mirror)


def test_file_url_source_sees_tags_and_deleted_branches(upstream: Upstream, tmp_path: Path) -> None:
    work = upstream.work
    work.git("tag", "-a", "v1.0.0", "-m", "Release 1.0.0")
    work.git("branch", "feature")
    work.push("main", "feature", "v1.0.0")
    source = Source(f"file://{upstream.bare}", tmp_path / "cache")
    source.fetch()
    assert source.heads() == {"main": upstream.first, "feature": upstream.first}
    assert source.tags() == {"v1.0.0": upstream.first}  # the annotated tag, peeled

    work.git("push", "-q", "origin", "--delete", "feature")
    fetched = source.fetch()

    assert fetched.changed == {"refs/heads/feature": (upstream.first, None)}
    assert fetched.branches == {"feature": None}
    assert source.heads() == {"main": upstream.first}


def test_git_daemon_source_fetches_a_new_commit(
    upstream: Upstream, git_daemon: GitDaemon, tmp_path: Path
) -> None:
    source = Source(git_daemon.url(upstream.bare), tmp_path / "cache")
    assert source.kind == "git"
    source.fetch()
    assert source.heads() == {"main": upstream.first}

    second = upstream.work.commit({"README": "two\n"}, "Two")
    upstream.work.push("main")

    assert source.fetch().branches == {"main": second}
    assert source.read_file(second, "README") == "two\n"


def test_http_source_with_a_token_in_the_url_fetches_and_pins(
    upstream: Upstream, http_git: HttpGitServer, tmp_path: Path
) -> None:
    url = http_git.url(upstream.bare)
    source = Source(url, tmp_path / "cache")
    assert source.shown == f"http://***@127.0.0.1:{http_git.port}/shop.git"

    source.fetch()
    pin = source.commit_pin("main", "pin.json", "{}\n", "Pin", "Conveyor <c@example.test>")

    assert source.heads() == {"main": pin}
    assert sh("git", "rev-parse", "main", cwd=upstream.bare) == pin


def test_http_source_without_credentials_fails_instead_of_prompting(
    upstream: Upstream, http_git: HttpGitServer, tmp_path: Path
) -> None:
    source = Source(http_git.url(upstream.bare, credentials=False), tmp_path / "cache")

    with pytest.raises(SourceError) as caught:
        source.fetch()

    assert "terminal prompts disabled" in str(caught.value)


def test_ssh_source_with_a_deploy_key_fetches_and_pins(
    upstream: Upstream, sshd: SshServer, tmp_path: Path
) -> None:
    url = sshd.url(upstream.bare)
    source = Source(url, tmp_path / "cache", ssh=SshAccess(sshd.deploy_key, sshd.known_hosts))

    source.fetch()
    assert source.heads() == {"main": upstream.first}
    pin = source.commit_pin(
        "main",
        ".conveyor/pins/staging.json",
        '{"release": 3}\n',
        "Pin staging to release 3",
        "Conveyor <conveyor@example.test>",
    )

    assert sh("git", "rev-parse", "main", cwd=upstream.bare) == pin
    assert source.heads()["main"] == pin  # the mirror's branch moved with the push
    assert source.fetch().changed == {}  # so the pin is not reported as someone's change
    assert source.read_file(pin, ".conveyor/pins/staging.json") == '{"release": 3}\n'
    assert source.commit(pin).parents == (upstream.first,)


def test_ssh_source_refuses_a_key_the_server_does_not_know(
    upstream: Upstream, sshd: SshServer, tmp_path: Path
) -> None:
    url = sshd.url(upstream.bare)
    source = Source(url, tmp_path / "cache", ssh=SshAccess(sshd.stranger_key, sshd.known_hosts))

    with pytest.raises(SourceError) as caught:
        source.fetch()

    message = str(caught.value)
    assert message.startswith(f"cannot fetch {url}: ")
    assert "Permission denied (publickey)" in message
    assert "fatal: Could not read from remote repository." in message


def test_ssh_source_refuses_a_host_key_it_was_not_given(
    upstream: Upstream, sshd: SshServer, tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    source = Source(
        sshd.url(upstream.bare), tmp_path / "cache", ssh=SshAccess(sshd.deploy_key, empty)
    )

    with pytest.raises(SourceError, match="Host key verification failed"):
        source.fetch()


def test_unreachable_https_source_names_the_url_without_its_token(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    source = Source(f"https://ci-bot:glpat-SECRET@127.0.0.1:{port}/team/shop.git", tmp_path / "c")

    with pytest.raises(SourceError) as caught:
        source.fetch()

    message = str(caught.value)
    assert "glpat-SECRET" not in message
    assert message.startswith(f"cannot fetch https://***@127.0.0.1:{port}/team/shop.git: ")


def test_a_path_that_is_not_a_repository(tmp_path: Path) -> None:
    source = Source(str(tmp_path / "nowhere"), tmp_path / "cache")

    with pytest.raises(SourceError) as caught:
        source.fetch()

    assert str(caught.value).startswith(f"cannot fetch {tmp_path / 'nowhere'}: ")
    assert "does not appear to be a git repository" in str(caught.value)


def test_reading_before_the_first_fetch_is_an_error(upstream: Upstream, tmp_path: Path) -> None:
    source = Source(str(upstream.bare), tmp_path / "cache")

    with pytest.raises(SourceError, match="has not been fetched yet"):
        source.heads()
    source.fetch()
    with pytest.raises(SourceError, match=f"has no commit {'0' * 40}"):
        source.commit("0" * 40)


# --- pins --------------------------------------------------------------------------------------


def test_commit_pin_pushes_to_a_bare_repository(upstream: Upstream, tmp_path: Path) -> None:
    source = Source(str(upstream.bare), tmp_path / "cache")
    content = json.dumps({"environment": "staging", "release": 7}) + "\n"

    pin = source.commit_pin(
        "main",
        ".conveyor/pins/staging.json",
        content,
        "Roll staging back to release 7",
        "Ops Person <ops@example.test>",
    )
    source.fetch()

    assert source.heads()["main"] == pin
    info = source.commit(pin)
    assert info.parents == (upstream.first,)
    assert info.author == "Ops Person <ops@example.test>"
    assert info.message == "Roll staging back to release 7\n"
    assert source.read_file(pin, ".conveyor/pins/staging.json") == content
    # The rest of the tree is the parent's.
    assert source.read_file(pin, "compose.yaml") == source.read_file(upstream.first, "compose.yaml")
    # Pinning what is already pinned changes nothing.
    again = source.commit_pin(
        "main", ".conveyor/pins/staging.json", content, "again", "Ops Person <ops@example.test>"
    )
    assert again == pin
    assert sh("git", "rev-list", "--count", "main", cwd=upstream.bare) == "2"


def test_commit_pin_is_made_again_when_the_branch_moved_meanwhile(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Source(str(upstream.bare), tmp_path / "cache")
    source.fetch()
    # Someone pushes right after our fetch: the first fetch of commit_pin is made to miss it.
    other = upstream.work.commit({"README": "pushed meanwhile\n"}, "Meanwhile")
    upstream.work.push("main")
    real_fetch = Source.fetch
    calls: list[int] = []

    def late_fetch(self: Source):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            return None
        return real_fetch(self)

    monkeypatch.setattr(Source, "fetch", late_fetch)

    pin = source.commit_pin("main", "pin.json", "{}\n", "Pin", "Conveyor <c@example.test>")

    assert len(calls) == 2  # the push was refused once (not a fast-forward), then redone
    assert sh("git", "rev-parse", "main", cwd=upstream.bare) == pin
    assert sh("git", "rev-parse", f"{pin}^", cwd=upstream.bare) == other


def test_commit_pin_on_a_missing_branch(upstream: Upstream, tmp_path: Path) -> None:
    source = Source(str(upstream.bare), tmp_path / "cache")

    with pytest.raises(SourceError, match="has no such branch"):
        source.commit_pin("production", "pin.json", "{}", "Pin", "Conveyor <c@example.test>")


def test_commit_pin_refused_by_the_server_says_why(upstream: Upstream, tmp_path: Path) -> None:
    hook = upstream.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    source = Source(str(upstream.bare), tmp_path / "cache")

    with pytest.raises(SourceError) as caught:
        source.commit_pin("main", "pin.json", "{}", "Pin", "Conveyor <c@example.test>")

    message = str(caught.value)
    assert message.startswith(f"cannot push to {upstream.bare}: ")
    assert "pre-receive hook declined" in message
    assert sh("git", "rev-parse", "main", cwd=upstream.bare) == upstream.first


def test_pins_do_not_disturb_checkouts_in_use(upstream: Upstream, tmp_path: Path) -> None:
    source = Source(str(upstream.bare), tmp_path / "cache")
    source.fetch()
    tree = source.checkout(upstream.first, tmp_path / "co")

    source.commit_pin("main", "pin.json", "{}\n", "Pin", "Conveyor <c@example.test>")

    assert not (tree / "pin.json").exists()
    assert subprocess.run(["git", "diff", "--quiet"], cwd=tree, check=False).returncode == 0
