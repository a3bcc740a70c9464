"""A work-tree clone of another repository that Conveyor commits to and pushes (the deploy
repository of a `target: kubernetes` environment, gitops.deploy_repo). Every call is one git
command through host.git; `GitError` when git cannot run or a command that must succeed
fails. The clone belongs to Conveyor: local changes in it are thrown away."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conveyor.errors import GitError
from conveyor.host import git
from conveyor.host.git import LIST_TIMEOUT, QUERY_TIMEOUT, GitRun

REMOTE = "origin"
_RECORD = "\x1e"  # between commits in a `git log` listing
_FIELD = "\x1f"  # between a commit's id and its message


def _must(repo: Path, *args: str, env: Mapping[str, str], timeout: float = LIST_TIMEOUT) -> str:
    done = git.call(repo, *args, env=env, timeout=timeout)
    if not done.ok:
        raise GitError(f"`git {' '.join(args)}` failed in {repo}: {done.stderr.strip()}")
    return done.stdout.decode("utf-8", "replace")


def fetch_branch(url: str, dest: Path, branch: str, env: Mapping[str, str]) -> str | None:
    """Make `dest` a clone of `url` (created on first use, its remote pointed at `url`
    afterwards) and fetch `branch`; returns the branch's commit there, None when the
    repository has no such branch yet (a new deploy repository)."""
    if not (dest / ".git").exists():
        dest.mkdir(parents=True, exist_ok=True)
        _must(dest, "init", "--quiet", env=env)
        _must(dest, "remote", "add", REMOTE, url, env=env)
    _must(dest, "remote", "set-url", REMOTE, url, env=env)
    ref = f"refs/remotes/{REMOTE}/{branch}"
    done = git.call(
        dest, "fetch", "--quiet", "--prune", REMOTE, f"+refs/heads/{branch}:{ref}", env=env
    )
    if not done.ok:
        if "couldn't find remote ref" in done.stderr or "could not find remote ref" in done.stderr:
            return None
        raise GitError(f"cannot fetch {branch} of {url}: {done.stderr.strip()}")
    return _must(dest, "rev-parse", "--verify", ref, env=env, timeout=QUERY_TIMEOUT).strip()


def reset_to(dest: Path, commit: str | None, env: Mapping[str, str]) -> None:
    """The work tree shows `commit` exactly (detached), untracked files removed; `None`: an
    empty tree on a branch with no commit yet (the first commit of a new repository)."""
    if commit is None:
        # An unborn branch (what a failed first push left is dropped) and an empty index.
        git.call(dest, "update-ref", "-d", "refs/heads/conveyor-new", env=env)
        _must(dest, "symbolic-ref", "HEAD", "refs/heads/conveyor-new", env=env)
        _must(dest, "read-tree", "--empty", env=env)
    else:
        _must(dest, "checkout", "--quiet", "--force", "--detach", commit, env=env)
    _must(dest, "clean", "-ffdxq", env=env)


def stage(dest: Path, path: str, env: Mapping[str, str]) -> bool:
    """Stage every change under `path` (new, changed, deleted files); whether there is any."""
    _must(dest, "add", "--all", "--", path, env=env)
    done = git.call(dest, "diff", "--cached", "--quiet", env=env, timeout=LIST_TIMEOUT)
    return not done.ok


def commit_staged(dest: Path, message: str, author: tuple[str, str], env: Mapping[str, str]) -> str:
    """Commit what is staged as `author` (name, e-mail); the new commit's id."""
    name, email = author
    who = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    done = git.call(
        dest,
        "-c",
        "commit.gpgsign=false",
        "commit",
        "--quiet",
        "--no-verify",
        "-F",
        "-",
        env={**env, **who},
        input=message.encode(),
        timeout=QUERY_TIMEOUT,
    )
    if not done.ok:
        raise GitError(f"`git commit` failed in {dest}: {done.stderr.strip()}")
    return _must(dest, "rev-parse", "HEAD", env=env, timeout=QUERY_TIMEOUT).strip()


def revert_staged(dest: Path, commits: list[str], env: Mapping[str, str]) -> None:
    """Stage the reversal of `commits` (newest first) on the work tree's commit, without
    committing. GitError when they do not revert cleanly (a later commit changed the same
    lines); the work tree is then reset."""
    done = git.call(dest, "revert", "--no-commit", "--no-edit", *commits, env=env)
    if not done.ok:
        git.call(dest, "revert", "--abort", env=env)
        raise GitError(f"`git revert` of {', '.join(c[:12] for c in commits)}: {done.stderr}")


def push(dest: Path, commit: str, branch: str, env: Mapping[str, str]) -> GitRun:
    """Push `commit` to `branch` of the remote (fast-forward only)."""
    return git.call(dest, "push", "--quiet", REMOTE, f"{commit}:refs/heads/{branch}", env=env)


def log(
    dest: Path, rev: str, path: str, env: Mapping[str, str], limit: int
) -> list[tuple[str, str]]:
    """(commit, message) of the commits of `rev` that changed `path`, newest first."""
    out = _must(
        dest,
        "log",
        f"--max-count={limit}",
        f"--format=%H{_FIELD}%B{_RECORD}",
        rev,
        "--",
        path,
        env=env,
    )
    found: list[tuple[str, str]] = []
    for record in out.split(_RECORD):
        sha, sep, message = record.strip("\n").partition(_FIELD)
        if sep:
            found.append((sha.strip(), message))
    return found


def commit_times(
    dest: Path, rev: str, path: str, env: Mapping[str, str], limit: int
) -> dict[str, float]:
    """Commit -> committer time (Unix seconds) of the commits `log` lists."""
    out = _must(dest, "log", f"--max-count={limit}", "--format=%H %ct", rev, "--", path, env=env)
    times: dict[str, float] = {}
    for line in out.splitlines():
        sha, _, when = line.partition(" ")
        if when.strip().isdigit():
            times[sha] = float(when)
    return times


def staged_diff(dest: Path, path: str, env: Mapping[str, str]) -> str:
    """The unified diff of what is staged under `path` against HEAD (against nothing on an
    unborn branch): new files whole, deleted ones removed."""
    return _must(dest, "diff", "--cached", "--no-color", "--no-ext-diff", "--", path, env=env)
