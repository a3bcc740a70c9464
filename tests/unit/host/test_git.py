"""The git adapter against real temporary repositories."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.errors import GitError
from conveyor.host import git

Git = Callable[..., str]
DATE = "2024-01-02T03:04:05+02:00"


@pytest.fixture(autouse=True)
def _no_machine_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def make_repo(path: Path) -> Git:
    path.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> str:
        env = {**os.environ, "GIT_AUTHOR_DATE": DATE, "GIT_COMMITTER_DATE": DATE}
        done = subprocess.run(
            ["git", *args], cwd=path, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    run("init", "-q", "-b", "main")
    run("config", "user.name", "Jane Doe")
    run("config", "user.email", "jane@example.com")
    run("config", "tag.gpgSign", "false")
    run("config", "commit.gpgSign", "false")
    return run


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Git]:
    path = tmp_path / "repo"
    run = make_repo(path)
    (path / ".gitignore").write_text("*.log\n")
    (path / "app.py").write_text("print('v1')\n")
    (path / "docs").mkdir()
    (path / "docs" / "guide.md").write_text("guide\n")
    run("add", "-A")
    run("commit", "-q", "-m", "First\n\nwith a body\n")
    return path, run


def test_outside_a_repository_questions_answer_no(tmp_path: Path) -> None:
    assert not git.is_work_tree(tmp_path)
    assert git.head(tmp_path) is None
    assert git.current_branch(tmp_path) is None
    assert git.checkout_files(tmp_path) is None
    assert git.untracked_files(tmp_path) is None
    assert git.refs(tmp_path) == git.Refs()


def test_a_repository_without_commits_has_no_head(tmp_path: Path) -> None:
    make_repo(tmp_path / "empty")
    assert git.is_work_tree(tmp_path / "empty")
    assert git.head(tmp_path / "empty") is None
    assert git.current_branch(tmp_path / "empty") == "main"
    assert git.commit(tmp_path / "empty") is None


def test_head_refs_and_commit(repo: tuple[Path, Git]) -> None:
    path, run = repo
    sha = run("rev-parse", "HEAD")
    run("tag", "-a", "v1", "-m", "Release 1")
    run("tag", "light")
    assert git.head(path) == sha
    assert git.resolve(path, "v1") == sha  # annotated tags are peeled to their commit
    assert git.resolve(path, "no-such-ref") is None
    found = git.refs(path)
    assert found.branches == {"main": sha}
    assert found.tags == {"v1": sha, "light": sha}
    assert found.tag_messages == {"v1": "Release 1\n"}
    assert git.commit(path) == git.Commit(
        "Jane Doe <jane@example.com>", "2024-01-02T01:04:05Z", "First\n\nwith a body\n"
    )
    assert git.config(path, "user.name") == "Jane Doe"
    assert git.config(path, "no.such-key") is None


def test_detached_head_has_no_branch(repo: tuple[Path, Git]) -> None:
    path, run = repo
    run("checkout", "-q", "--detach")
    assert git.current_branch(path) is None
    assert git.head(path) == run("rev-parse", "HEAD")


def test_remote_head_names_the_remote_default_branch(repo: tuple[Path, Git]) -> None:
    path, run = repo
    assert git.remote_head(path) is None
    run("update-ref", "refs/remotes/origin/trunk", "HEAD")
    run("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    assert git.remote_head(path) == "trunk"


def test_file_listings(repo: tuple[Path, Git]) -> None:
    path, _ = repo
    (path / "new.py").write_text("")  # untracked, not ignored
    (path / "debug.log").write_text("")  # ignored
    assert sorted(git.checkout_files(path) or []) == [
        ".gitignore",
        "app.py",
        "docs/guide.md",
        "new.py",
    ]
    assert sorted(git.untracked_files(path) or []) == ["debug.log", "new.py"]


def test_untracked_files_ignore_the_callers_git_environment(
    repo: tuple[Path, Git], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = repo
    make_repo(tmp_path / "other")
    (path / "new.py").write_text("")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "other" / ".git"))  # as inside a git hook
    assert git.untracked_files(path) == ["new.py"]


def test_changed_since_and_files_at_a_commit(repo: tuple[Path, Git]) -> None:
    path, run = repo
    first = run("rev-parse", "HEAD")
    (path / "app.py").write_text("print('v2')\n")
    (path / "lib").mkdir()
    (path / "lib" / "util.py").write_text("")
    run("add", "-A")
    run("commit", "-q", "-m", "Second")
    assert git.changed_since(path, first) == ["app.py", "lib/util.py"]
    assert git.changed_since(path, "HEAD") == []
    assert git.changed_since(path, "nope") is None
    assert git.files_at(path, first) == [".gitignore", "app.py", "docs/guide.md"]
    assert git.is_file_at(path, first, "app.py")
    assert not git.is_file_at(path, first, "docs")  # a tree, not a file
    assert not git.is_file_at(path, first, "lib/util.py")
    assert git.read_file_at(path, first, "app.py") == "print('v1')\n"
    assert git.read_file_at(path, "HEAD", "app.py") == "print('v2')\n"


def test_a_command_that_must_succeed_says_what_failed(repo: tuple[Path, Git]) -> None:
    path, _ = repo
    with pytest.raises(GitError, match=r"`git show HEAD:missing.txt` failed in .*: .*run it"):
        git.read_file_at(path, "HEAD", "missing.txt")


def test_git_missing_is_an_error_that_says_to_install_it(
    repo: tuple[Path, Git], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = repo
    monkeypatch.setenv("PATH", str(path / "no-bin"))
    with pytest.raises(GitError, match="git is not installed or not on PATH; install git"):
        git.head(path)


def test_share_git_dir_borrows_objects_and_keeps_commits_apart(
    repo: tuple[Path, Git], tmp_path: Path
) -> None:
    path, run = repo
    copy = tmp_path / "copy"
    copy.mkdir()
    git.share_git_dir(path / ".git", copy / ".git")
    assert not list((copy / ".git" / "objects").glob("??"))  # no loose objects copied
    alternates = (copy / ".git" / "objects" / "info" / "alternates").read_text()
    assert alternates == f"{(path / '.git' / 'objects').resolve()}\n"
    assert git.head(copy) == git.head(path)
    assert git.read_file_at(copy, "HEAD", "docs/guide.md") == "guide\n"
    env = {**os.environ, "GIT_AUTHOR_DATE": DATE, "GIT_COMMITTER_DATE": DATE}
    subprocess.run(
        ["git", "-C", str(copy), "commit", "-q", "--allow-empty", "-m", "in the copy"],
        env=env,
        check=True,
    )
    assert git.head(copy) != git.head(path)
    assert git.head(path) == run("rev-parse", "HEAD")
