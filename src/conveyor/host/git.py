"""The git adapter: every question Conveyor asks a git repository, asked here.

Git runs as a subprocess (argument lists, never a shell) with `git -C REPO`. Questions whose
honest answer may be "no" (is this a work tree, which commit is `main`, what differs since
`v1`) return None or False when git says no; `GitError` means git could not answer at all: it
is not installed, it timed out, or a command that must succeed failed. Its message names the
command, the repository and what to do.

The repository's own configuration applies, as for a person typing the same command, except in
`isolated` calls (a job's copy of a checkout): the caller's `GIT_*` environment (a hook's
`GIT_DIR`, say) is dropped there and the directory is trusted whoever owns it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from conveyor.errors import GitError

QUERY_TIMEOUT = 30.0  # seconds: one ref, one config value, one object
LIST_TIMEOUT = 300.0  # seconds: listings and diffs of large trees


@dataclass(frozen=True)
class Refs:
    """Local branches and tags with the commit each points at (annotated tags peeled)."""

    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    tag_messages: dict[str, str] = field(default_factory=dict)  # annotated tags only


@dataclass(frozen=True)
class Commit:
    """One commit as its raw object says: `Name <mail>` of the author, the committer's time
    (UTC, ISO 8601) and the message exactly as written."""

    author: str
    committed_at: str
    message: str


# --- running git ---------------------------------------------------------------------------


def _run(
    repo: Path, args: Sequence[str], *, timeout: float, isolated: bool = False
) -> subprocess.CompletedProcess[bytes]:
    argv = ["git", "-C", str(repo), *args]
    env = None
    if isolated:
        argv[1:1] = ["-c", f"safe.directory={repo}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        return subprocess.run(argv, capture_output=True, env=env, timeout=timeout, check=False)
    except FileNotFoundError:
        raise GitError(
            f"cannot run `git {args[0]}` in {repo}: git is not installed or not on PATH; "
            "install git (apt-get install git) and try again"
        ) from None
    except OSError as e:
        raise GitError(f"cannot run `git {args[0]}` in {repo}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise GitError(
            f"`git {' '.join(args)}` in {repo} took longer than {timeout:g}s; check that the "
            "repository is on a local, responsive disk (or not locked by another git) and retry"
        ) from None


def _answer(
    repo: Path, *args: str, timeout: float = QUERY_TIMEOUT, isolated: bool = False
) -> bytes | None:
    """stdout of a question git may answer with no (non-zero exit): None then."""
    done = _run(repo, args, timeout=timeout, isolated=isolated)
    return done.stdout if done.returncode == 0 else None


def _must(repo: Path, *args: str, timeout: float = QUERY_TIMEOUT, isolated: bool = False) -> bytes:
    """stdout of a command that has to succeed."""
    done = _run(repo, args, timeout=timeout, isolated=isolated)
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
        raise GitError(
            f"`git {' '.join(args)}` failed in {repo}: {said}; run it there yourself to see "
            "what git needs (a commit, a ref, a readable repository)"
        )
    return done.stdout


def _text(out: bytes | None) -> str:
    return (out or b"").decode("utf-8", "replace").strip()


def _names(out: bytes) -> list[str]:
    """A `-z` listing as paths, in git's order."""
    return [p for p in os.fsdecode(out).split("\0") if p]


# --- HEAD and refs ---------------------------------------------------------------------------


def is_work_tree(repo: Path, *, isolated: bool = False) -> bool:
    """Whether `repo` is inside a git work tree."""
    out = _answer(repo, "rev-parse", "--is-inside-work-tree", isolated=isolated)
    return out is not None and out.strip() == b"true"


def head(repo: Path) -> str | None:
    """The commit HEAD points at; None outside a repository or before the first commit."""
    return resolve(repo, "HEAD")


def resolve(repo: Path, rev: str) -> str | None:
    """The commit `rev` (a branch, tag, sha, `HEAD~1`...) names, or None if it names none."""
    return _text(_answer(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")) or None


def current_branch(repo: Path) -> str | None:
    """The branch HEAD is on; None when HEAD is detached (or not a repository)."""
    return _text(_answer(repo, "symbolic-ref", "-q", "--short", "HEAD")) or None


def remote_head(repo: Path, remote: str = "origin") -> str | None:
    """The branch `refs/remotes/<remote>/HEAD` points at (the remote's default branch)."""
    ref = _text(_answer(repo, "symbolic-ref", "-q", f"refs/remotes/{remote}/HEAD"))
    return ref.removeprefix(f"refs/remotes/{remote}/") or None


def config(repo: Path, key: str) -> str | None:
    """One configuration value as git resolves it for `repo`, or None when unset."""
    return _text(_answer(repo, "config", "--get", key)) or None


def refs(repo: Path) -> Refs:
    """Local branches and tags; empty outside a repository."""
    # Unit (0x1f) and record (0x1e) separators: empty fields and messages cannot fake them.
    fmt = "%(refname)%1f%(objectname)%1f%(*objectname)%1f%(objecttype)%1f%(contents)%1e"
    out = _answer(repo, "for-each-ref", f"--format={fmt}", "refs/heads", "refs/tags")
    branches: dict[str, str] = {}
    tags: dict[str, str] = {}
    messages: dict[str, str] = {}
    for record in (out or b"").decode("utf-8", "replace").split("\x1e"):
        parts = record.lstrip("\n").split("\x1f")
        if len(parts) < 5:
            continue
        ref, obj, peeled, kind, contents = parts[:5]
        if ref.startswith("refs/heads/"):
            branches[ref.removeprefix("refs/heads/")] = obj
        elif ref.startswith("refs/tags/"):
            name = ref.removeprefix("refs/tags/")
            tags[name] = peeled or obj
            if kind == "tag":
                messages[name] = contents
    return Refs(branches, tags, messages)


def commit(repo: Path, rev: str = "HEAD") -> Commit | None:
    """Author, committer time and exact message of `rev`, from the raw commit object."""
    raw = _answer(repo, "cat-file", "commit", rev)
    if raw is None:
        return None
    headers, _, message = raw.decode("utf-8", "replace").partition("\n\n")
    author, committed_at = "", ""
    for line in headers.splitlines():
        if line.startswith("author "):
            author = _person(line.removeprefix("author "))[0]
        elif line.startswith("committer "):
            committed_at = _person(line.removeprefix("committer "))[1]
    return Commit(author, committed_at, message)


def _person(text: str) -> tuple[str, str]:
    """'Name <mail> 1700000000 +0100' -> ('Name <mail>', '2023-11-14T22:13:20Z')."""
    who, _, when = text.rpartition(">")
    seconds = when.split()[0] if when.split() else "0"
    stamp = datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return who + ">", stamp


# --- files -----------------------------------------------------------------------------------


def checkout_files(repo: Path) -> list[str] | None:
    """What a clean checkout holds plus work in progress: tracked files and untracked files
    `.gitignore` does not exclude, in git's order. None when `repo` is not a work tree."""
    out = _answer(
        repo,
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
        timeout=LIST_TIMEOUT,
    )
    return None if out is None else _names(out)


def untracked_files(repo: Path) -> list[str] | None:
    """Files git does not track, ignored ones included (a nested repository is listed as
    `dir/`); None when `repo` is not a work tree. Asked `isolated`: `repo` is a job's copy."""
    if not is_work_tree(repo, isolated=True):
        return None
    out = _must(repo, "ls-files", "--others", "-z", timeout=LIST_TIMEOUT, isolated=True)
    return _names(out)


def changed_since(repo: Path, rev: str) -> list[str] | None:
    """Paths that differ between `rev` and HEAD; None when `rev` names no commit."""
    out = _answer(repo, "diff", "--name-only", "-z", rev, "HEAD", "--", timeout=LIST_TIMEOUT)
    return None if out is None else _names(out)


def files_at(repo: Path, rev: str) -> list[str]:
    """Every file of the tree at `rev`, sorted."""
    out = _must(repo, "ls-tree", "-r", "--name-only", "-z", rev, timeout=LIST_TIMEOUT)
    return sorted(_names(out))


def is_file_at(repo: Path, rev: str, path: str) -> bool:
    """Whether `path` is a file (a blob) in the tree at `rev`."""
    out = _answer(repo, "cat-file", "-t", f"{rev}:{path}")
    return out is not None and out.strip() == b"blob"


def read_file_at(repo: Path, rev: str, path: str) -> str:
    """The text of `path` at `rev` (UTF-8)."""
    return _must(repo, "show", f"{rev}:{path}").decode("utf-8")


def share_git_dir(git_dir: Path, dest: Path) -> None:
    """A copy of a repository's `.git` without its object store, which the copy borrows
    through `objects/info/alternates` (what `git clone --shared` does): git works in the copy,
    commits made there stay there, and a large history costs nothing to copy."""
    shutil.copytree(
        git_dir,
        dest,
        symlinks=True,
        dirs_exist_ok=True,
        ignore=lambda d, _names: ["objects"] if Path(d) == git_dir else [],
    )
    info = dest / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (dest / "objects" / "pack").mkdir(exist_ok=True)
    (info / "alternates").write_text(str((git_dir / "objects").resolve()) + "\n")


def clone_shared(repo: Path, dest: Path, branch: str | None = None) -> None:
    """A checkout of `repo` at `branch` (a branch or tag; default: its HEAD) in `dest`, which
    borrows the repository's objects (`clone --shared`): a downstream project's pipeline runs
    there. Raises GitError when `branch` does not exist."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    at = ["--branch", branch] if branch else []
    _must(
        dest.parent, "clone", "--quiet", "--shared", *at, str(repo), str(dest), timeout=LIST_TIMEOUT
    )
