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
from collections.abc import Mapping, Sequence
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
    repo: Path,
    args: Sequence[str],
    *,
    timeout: float,
    isolated: bool = False,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    argv = ["git", "-C", str(repo), *args]
    full_env = None
    if isolated:
        argv[1:1] = ["-c", f"safe.directory={repo}"]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    elif env is not None:
        # The caller's configuration choices (GIT_CONFIG_GLOBAL...) stay; what points git at
        # another repository or index (a hook's GIT_DIR) does not.
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GIT_") or k.startswith(("GIT_CONFIG", "GIT_TRACE"))
        }
        full_env.update(env)
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            env=full_env,
            timeout=timeout,
            check=False,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
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


def _must(
    repo: Path,
    *args: str,
    timeout: float = QUERY_TIMEOUT,
    isolated: bool = False,
    input: bytes | None = None,
) -> bytes:
    """stdout of a command that has to succeed."""
    done = _run(repo, args, timeout=timeout, isolated=isolated, input=input)
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


# --- sources: mirrors, worktrees, signatures, commits without a work tree --------------------
# What the GitOps server asks of a repository it follows (`conveyor.gitops.source`). Commands
# that talk to a remote return a `GitRun` whatever happened: the caller explains a failure in
# its own terms (which source, which credential is missing). `env` is added to this process's
# environment without the `GIT_*` variables that point at a repository (a hook's GIT_DIR).


@dataclass(frozen=True)
class GitRun:
    """How a git command ended: its exit code, stdout, and stderr as text."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class SignatureCheck:
    """What git says of a commit's signature (`git log --format=%G?...`): `status` is git's
    letter (G good, U good but the signer is unknown or untrusted, B bad, X expired signature,
    Y expired key, R revoked key, E cannot be checked, N none)."""

    status: str
    signer: str  # SSH: the allowed-signers principal; OpenPGP: the key's user id
    key: str  # the key as the signature names it (SSH fingerprint, OpenPGP key id)
    fingerprint: str  # OpenPGP: the signing (sub)key's fingerprint
    primary_fingerprint: str  # OpenPGP: its primary key's fingerprint


def call(
    repo: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = LIST_TIMEOUT,
) -> GitRun:
    """Run `git -C repo ARGS` and say how it ended. Raises GitError only when git cannot run
    at all or does not finish in time."""
    done = _run(repo, args, timeout=timeout, env=env or {}, input=input)
    return GitRun(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))


def init_mirror(path: Path, url: str) -> None:
    """A bare repository at `path` whose `origin` is `url`, fetching its branches and tags
    (and nothing else a server may publish, such as GitHub's pull request refs). Run again,
    it only points `origin` at `url`."""
    if not (path / "HEAD").is_file():
        path.mkdir(parents=True, exist_ok=True)
        _must(path, "init", "--quiet", "--bare")
        _must(path, "config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*")
        _must(path, "config", "--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*")
    _must(path, "config", "remote.origin.url", url)


def fetch_origin(repo: Path, env: Mapping[str, str], timeout: float = LIST_TIMEOUT) -> GitRun:
    """Fetch `origin`'s branches and tags into `repo`; refs gone there are deleted here."""
    return call(repo, "fetch", "--quiet", "--prune", "origin", env=env, timeout=timeout)


def push_origin(
    repo: Path, sha: str, ref: str, env: Mapping[str, str], timeout: float = LIST_TIMEOUT
) -> GitRun:
    """Push commit `sha` to `ref` of `origin` (a fast-forward only)."""
    return call(repo, "push", "--quiet", "origin", f"{sha}:{ref}", env=env, timeout=timeout)


def parents(repo: Path, rev: str) -> tuple[str, ...] | None:
    """The parents of commit `rev` in order (none for a root commit); None if no such commit."""
    out = _answer(repo, "rev-list", "--parents", "-n", "1", f"{rev}^{{commit}}", "--")
    if out is None:
        return None
    return tuple(_text(out).split()[1:])


def history(repo: Path, rev: str, limit: int) -> list[str]:
    """`rev` and the commits before it, newest first (git's default order), at most `limit`."""
    out = _must(repo, "rev-list", f"--max-count={limit}", f"{rev}^{{commit}}", "--")
    return _text(out).split()


def is_ancestor(repo: Path, ancestor: str, rev: str) -> bool:
    """Whether `ancestor` is `rev` or one of its ancestors."""
    return _answer(repo, "merge-base", "--is-ancestor", ancestor, rev) is not None


def worktree_add(repo: Path, dest: Path, sha: str) -> None:
    """A clean, detached work tree of commit `sha` at `dest` (which must not exist or be
    empty). While it exists, `repo`'s garbage collection keeps the commit."""
    _must(repo, "worktree", "add", "--quiet", "--detach", str(dest), sha, timeout=LIST_TIMEOUT)


def worktree_move_to(tree: Path, sha: str, keep: str = ".conveyor") -> None:
    """Make the work tree at `tree` show commit `sha` exactly (detached), removing files git
    does not track except `keep` (the state Conveyor keeps next to the compose file)."""
    _must(tree, "checkout", "--quiet", "--force", "--detach", sha, timeout=LIST_TIMEOUT)
    _must(tree, "clean", "-ffdxq", "-e", f"/{keep}", timeout=LIST_TIMEOUT)


def worktree_remove(repo: Path, dest: Path) -> None:
    """Remove the work tree at `dest` (changes in it are lost) and forget it in `repo`."""
    if dest.exists():
        _must(repo, "worktree", "remove", "--force", "--force", str(dest), timeout=LIST_TIMEOUT)
    _must(repo, "worktree", "prune")


def signature_format(repo: Path, rev: str) -> str | None:
    """How commit `rev` is signed: "ssh", "openpgp" or "x509"; None when unsigned (or no
    such commit). Read from the raw object: git's own check names no format."""
    raw = _answer(repo, "cat-file", "commit", rev)
    if raw is None:
        return None
    headers = raw.split(b"\n\n", 1)[0]
    for line in headers.split(b"\n"):
        if line.startswith((b"gpgsig ", b"gpgsig-sha256 ")):
            armor = line.split(b" ", 1)[1]
            if armor.startswith(b"-----BEGIN SSH SIGNATURE"):
                return "ssh"
            if armor.startswith(b"-----BEGIN SIGNED MESSAGE"):
                return "x509"
            return "openpgp"
    return None


def check_signature(
    repo: Path, rev: str, config: Mapping[str, str], env: Mapping[str, str]
) -> SignatureCheck:
    """Git's verdict on the signature of commit `rev`, with `config` given as `-c` options
    (gpg.ssh.allowedSignersFile...) and `env` (GNUPGHOME...) for the verifying program."""
    options = [arg for key, value in config.items() for arg in ("-c", f"{key}={value}")]
    # Unit separators between fields: a user id may hold any printable text. (%GT is left
    # out: git 2.39 aborts on it for a key it cannot find.)
    out = call(
        repo,
        *options,
        "log",
        "-1",
        "--format=%G?%x1f%GS%x1f%GK%x1f%GF%x1f%GP",
        rev,
        env=env,
        timeout=QUERY_TIMEOUT,
    )
    if not out.ok:
        said = out.stderr.strip() or f"exit code {out.returncode}"
        raise GitError(f"`git log` of {rev} failed in {repo}: {said}")
    fields = out.stdout.decode("utf-8", "replace").rstrip("\n").split("\x1f")
    fields += [""] * (5 - len(fields))
    return SignatureCheck(*fields[:5])


def write_blob(repo: Path, data: bytes) -> str:
    """Store `data` as a blob in `repo`; its object id."""
    return _text(_must(repo, "hash-object", "-w", "--stdin", input=data))


def tree_with_file(repo: Path, rev: str, path: str, blob: str, scratch: Path) -> str:
    """The tree of commit `rev` with the file `path` set to `blob` (mode 644), written to
    `repo` without a work tree; `scratch` is a directory for the temporary index."""
    index = {"GIT_INDEX_FILE": str(scratch / "index")}
    for args in (
        ("read-tree", rev),
        ("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"),
    ):
        done = call(repo, *args, env=index, timeout=QUERY_TIMEOUT)
        if not done.ok:
            raise GitError(f"`git {args[0]}` failed in {repo}: {done.stderr.strip()}")
    done = call(repo, "write-tree", env=index, timeout=QUERY_TIMEOUT)
    if not done.ok:
        raise GitError(f"`git write-tree` failed in {repo}: {done.stderr.strip()}")
    return _text(done.stdout)


def tree_of(repo: Path, rev: str) -> str | None:
    """The tree object of commit `rev`."""
    return _text(_answer(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{tree}}")) or None


def commit_tree(
    repo: Path,
    tree: str,
    parent: str,
    message: str,
    author: tuple[str, str],
    signing_key: Path | None = None,
) -> str:
    """A commit of `tree` on `parent`, authored and committed by `author` (name, e-mail), now;
    signed with the SSH private key `signing_key` when given. Its object id."""
    name, email = author
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingKey={signing_key}"] if signing_key else []
    args = [*sign, "commit-tree", tree, "-p", parent, "-F", "-"]
    if signing_key:
        args.append("-S")
    done = call(repo, *args, env=env, input=message.encode(), timeout=QUERY_TIMEOUT)
    if not done.ok:
        raise GitError(f"`git commit-tree` failed in {repo}: {done.stderr.strip()}")
    return _text(done.stdout)
