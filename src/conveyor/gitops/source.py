"""A git repository the server follows: a bare mirror kept up to date, read without a work
tree, checked out per commit, its commit signatures checked, and pin commits pushed back.

`Source(url, cache_dir)` takes a path, `file://`, `git://`, `ssh://` (or `user@host:path`),
`http://` or `https://` URL. Git never prompts: a missing credential is an error. For SSH the
caller gives a deploy key and a known_hosts file (`SshAccess`); the host key must be in it.
Every failure is a `SourceError` naming the URL without its credentials and ending with git's
own words. All git runs through `conveyor.host.git`.

One `Source` serializes its own git calls (a webhook's fetch and the poller's), so share one
instance per repository within the process.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from conveyor.errors import GitError, SourceError
from conveyor.host import git
from conveyor.model.environments import GpgVerify, SshVerify
from conveyor.model.frozen import Frozen

UrlKind = Literal["path", "file", "git", "ssh", "http", "https"]
REMOTE_TIMEOUT = 300.0  # seconds for one fetch or push
PUSH_ATTEMPTS = 3  # a pin is rebased onto a branch that moved this many times at most
# git's scp-like syntax: a colon before any slash ([user@]host:path).
_SCP_LIKE = re.compile(r"(?:[^/@:]+@)?[^/@:]+:.*")
_HELPER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")  # ext::cmd runs a command: never
_AUTHOR = re.compile(r"\s*(.*?)\s*<([^<>]+)>\s*")


@dataclass(frozen=True)
class SshAccess:
    """How to reach an ssh:// source: a deploy key (private key file) and the known_hosts file
    that holds the server's host key. Nothing from ~/.ssh is used."""

    key_file: Path
    known_hosts: Path

    def command(self) -> str:
        return shlex.join(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(self.key_file),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
            ]
        )


class CommitInfo(Frozen):
    sha: str
    author: str  # `Name <mail>`
    committed_at: str  # committer time, UTC ISO 8601
    message: str
    parents: tuple[str, ...]


class Verdict(Frozen):
    """Whether a commit may be deployed under a signature policy, and why (shown to people)."""

    ok: bool
    reason: str
    signer: str | None = None  # the allowed-signers principal or the OpenPGP user id
    key: str | None = None  # the SSH key fingerprint or the OpenPGP key fingerprint


class FetchResult(Frozen):
    """What a fetch moved: full ref name -> (before, after); None for created / deleted."""

    changed: dict[str, tuple[str | None, str | None]]

    @property
    def branches(self) -> dict[str, str | None]:
        """Branches that moved (or appeared) -> their new commit; None when deleted."""
        return {
            ref.removeprefix("refs/heads/"): after
            for ref, (_, after) in self.changed.items()
            if ref.startswith("refs/heads/")
        }


class Source:
    """One git repository, mirrored under `cache_dir` (`mirror.git`)."""

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        ssh: SshAccess | None = None,
        timeout: float = REMOTE_TIMEOUT,
    ) -> None:
        self.kind = url_kind(url)
        # A path is made absolute now: git runs inside the mirror, not where we were started.
        self.url = str(Path(url).resolve()) if self.kind == "path" else url
        self.shown = redact(self.url)
        self.cache_dir = cache_dir
        self.mirror = cache_dir / "mirror.git"
        self.ssh = ssh
        self.timeout = timeout
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Source({self.shown!r})"

    # --- fetching and reading ----------------------------------------------------------------

    def fetch(self) -> FetchResult:
        """Bring the mirror up to date with the source (branches and tags; those deleted there
        are deleted here). Cheap when nothing changed: one exchange of refs."""
        with self._lock:
            try:
                git.init_mirror(self.mirror, self.url)
                before = self._refs()
                done = git.fetch_origin(self.mirror, self._env(), self.timeout)
            except GitError as e:
                raise SourceError(f"cannot fetch {self.shown}: {self._clean(e)}") from None
            if not done.ok:
                raise SourceError(f"cannot fetch {self.shown}: {self._said(done.stderr)}")
            after = self._refs()
        changed = {
            ref: (before.get(ref), after.get(ref))
            for ref in sorted(set(before) | set(after))
            if before.get(ref) != after.get(ref)
        }
        return FetchResult(changed=changed)

    def heads(self) -> dict[str, str]:
        """Branch -> commit, as of the last fetch."""
        return self._read_refs().branches

    def tags(self) -> dict[str, str]:
        """Tag -> commit (annotated tags peeled), as of the last fetch."""
        return self._read_refs().tags

    def commit(self, sha: str) -> CommitInfo:
        """Author, time, message and parents of a fetched commit."""
        found = self._resolve(sha)
        info = git.commit(self.mirror, found)
        parents = git.parents(self.mirror, found)
        if info is None or parents is None:
            raise SourceError(f"commit {sha} of {self.shown} cannot be read")
        return CommitInfo(
            sha=found,
            author=info.author,
            committed_at=info.committed_at,
            message=info.message,
            parents=parents,
        )

    def read_file(self, sha: str, path: str) -> str | None:
        """The text of `path` at commit `sha` (conveyor.yaml, say) without a checkout; None
        when the commit has no such file."""
        found = self._resolve(sha)
        if not git.is_file_at(self.mirror, found, path):
            return None
        try:
            return git.read_file_at(self.mirror, found, path)
        except (GitError, UnicodeDecodeError) as e:
            raise SourceError(f"cannot read {path} at {sha[:12]} of {self.shown}: {e}") from None

    def history(self, sha: str, limit: int) -> list[str]:
        """`sha` and the commits before it, newest first, at most `limit`."""
        try:
            return git.history(self.mirror, self._resolve(sha), limit)
        except GitError as e:
            raise SourceError(f"cannot list the history of {sha[:12]}: {e}") from None

    def is_ancestor(self, ancestor: str, sha: str) -> bool:
        """Whether `ancestor` is `sha` or comes before it (a fast-forward from it)."""
        return git.is_ancestor(self.mirror, self._resolve(ancestor), self._resolve(sha))

    # --- checkouts -------------------------------------------------------------------------

    def checkout(self, sha: str, dest: Path) -> Path:
        """A clean tree of commit `sha` at `dest` (a detached git work tree: CI jobs see a
        real checkout). `dest` must not exist, or be empty. Remove it with
        `remove_checkout`; until then the commit is kept even if its branch is deleted."""
        found = self._resolve(sha)
        if dest.exists() and any(dest.iterdir()):
            raise SourceError(
                f"cannot check out {sha[:12]} into {dest}: the directory is not empty"
            )
        with self._lock:
            try:
                git.worktree_add(self.mirror, dest, found)
            except GitError as e:
                raise SourceError(f"cannot check out {sha[:12]} of {self.shown}: {e}") from None
        return dest

    def move_checkout(self, dest: Path, sha: str) -> Path:
        """Turn the checkout at `dest` (made by `checkout`) to commit `sha`, keeping its
        `.conveyor` state directory: one work tree per environment, whose state (releases,
        pipelines) stays where the compose file is."""
        found = self._resolve(sha)
        with self._lock:
            try:
                git.worktree_move_to(dest, found)
            except GitError as e:
                raise SourceError(f"cannot check out {sha[:12]} in {dest}: {e}") from None
        return dest

    def default_branch_head(self) -> str | None:
        """The commit of the source's default branch, None for an empty source. The mirror's
        HEAD names it when it points at a fetched branch; else `main`, `master`, or the only
        branch there is."""
        found = git.resolve(self.mirror, "HEAD")
        if found is not None:
            return found
        heads = self.heads()
        for name in ("main", "master"):
            if name in heads:
                return heads[name]
        return next(iter(heads.values())) if len(heads) == 1 else None

    def remove_checkout(self, dest: Path) -> None:
        with self._lock:
            try:
                git.worktree_remove(self.mirror, dest)
            except GitError as e:
                raise SourceError(f"cannot remove the checkout {dest}: {e}") from None

    # --- signatures ------------------------------------------------------------------------

    def verify(self, sha: str, policy: SshVerify | GpgVerify) -> Verdict:
        """Whether commit `sha` carries a signature `policy` accepts. Only this commit is
        checked (the one that would be deployed), not its history."""
        found = self._resolve(sha)
        short = found[:12]
        kind = git.signature_format(self.mirror, found)
        wanted = "ssh" if isinstance(policy, SshVerify) else "openpgp"
        if kind is None:
            return Verdict(ok=False, reason=f"commit {short} is not signed")
        if kind != wanted:
            return Verdict(
                ok=False,
                reason=f"commit {short} has an {_FORMATS[kind]} signature; this environment "
                f"accepts {_FORMATS[wanted]} signatures only",
            )
        if isinstance(policy, SshVerify):
            return self._verify_ssh(found, policy)
        return self._verify_gpg(found, policy)

    def _verify_ssh(self, sha: str, policy: SshVerify) -> Verdict:
        short = sha[:12]
        signers = policy.allowed_signers
        if not os.path.isfile(signers):
            return Verdict(ok=False, reason=f"the allowed signers file {signers} does not exist")
        with tempfile.TemporaryDirectory(prefix="conveyor-gnupg-") as nobody:
            # An empty GNUPGHOME: the host's own keys never vouch for a commit.
            check = self._check(sha, {"gpg.ssh.allowedSignersFile": signers}, nobody)
        if check.status == "G":
            return Verdict(
                ok=True,
                reason=f"commit {short} is signed by {check.signer} (SSH key {check.key})",
                signer=check.signer,
                key=check.key,
            )
        if check.status == "U":
            reason = (
                f"commit {short} is signed with SSH key {check.key}, which {signers} does not allow"
            )
        else:
            reason = (
                f"commit {short}: {_STATUS.get(check.status, 'the signature cannot be checked')}"
            )
        return Verdict(ok=False, reason=reason, key=check.key or None)

    def _verify_gpg(self, sha: str, policy: GpgVerify) -> Verdict:
        short = sha[:12]
        if not os.path.isdir(policy.keyring):
            return Verdict(ok=False, reason=f"the GnuPG keyring {policy.keyring} does not exist")
        check = self._check(sha, {}, policy.keyring)
        fingerprint = check.fingerprint or None
        if check.status == "E":
            reason = (
                f"commit {short} is signed with key {check.key}, which is not in {policy.keyring}"
            )
            return Verdict(ok=False, reason=reason, key=check.key or None)
        # U: a good signature by a key of the keyring nobody marked trusted. The keyring was
        # chosen for this environment: being in it is the trust.
        if check.status not in ("G", "U"):
            reason = (
                f"commit {short}: {_STATUS.get(check.status, 'the signature cannot be checked')}"
            )
            return Verdict(ok=False, reason=reason, signer=check.signer or None, key=fingerprint)
        allowed = set(policy.fingerprints)
        if allowed and not allowed & {check.fingerprint, check.primary_fingerprint}:
            reason = (
                f"commit {short} is signed by {check.signer} (key {check.fingerprint}), which "
                "is not one of the allowed fingerprints"
            )
            return Verdict(ok=False, reason=reason, signer=check.signer, key=fingerprint)
        return Verdict(
            ok=True,
            reason=f"commit {short} is signed by {check.signer} (key {check.fingerprint})",
            signer=check.signer,
            key=fingerprint,
        )

    def _check(self, sha: str, config: dict[str, str], gnupghome: str) -> git.SignatureCheck:
        try:
            return git.check_signature(self.mirror, sha, config, {"GNUPGHOME": gnupghome})
        except GitError as e:
            raise SourceError(f"cannot check the signature of {sha[:12]}: {e}") from None

    # --- writing back ----------------------------------------------------------------------

    def commit_pin(
        self,
        branch: str,
        path: str,
        content: str,
        message: str,
        author: str,
        *,
        signing_key: Path | None = None,
    ) -> str:
        """Commit `content` as file `path` on top of `branch` and push it to the source: git
        then records what the server did (a rollback's pin file), and the next poll does not
        undo it. `author` is `Name <mail>`; with `signing_key` (an SSH private key) the commit
        is signed. If the branch moves meanwhile, the pin is made again on the new tip. When
        the file already holds `content`, nothing is pushed and the tip is returned. Returns
        the commit on the branch; `heads()` shows it at once (git moves the mirror's branch as
        it pushes), so the next `fetch()` does not report it as a change."""
        match = _AUTHOR.fullmatch(author)
        if match is None:
            raise SourceError(f"author must be 'Name <mail>', got {author!r}")
        person = (match.group(1) or match.group(2), match.group(2))
        ref = f"refs/heads/{branch}"
        with self._lock:
            for _ in range(PUSH_ATTEMPTS):
                self.fetch()
                parent = self.heads().get(branch)
                if parent is None:
                    raise SourceError(f"cannot pin on {branch}: {self.shown} has no such branch")
                try:
                    sha = self._pin_commit(parent, path, content, message, person, signing_key)
                    if sha == parent:
                        return parent
                    done = git.push_origin(self.mirror, sha, ref, self._env(), self.timeout)
                except GitError as e:
                    raise SourceError(
                        f"cannot pin {path} on {branch} of {self.shown}: {self._clean(e)}"
                    ) from None
                if done.ok:
                    return sha
                if not _moved_meanwhile(done.stderr):
                    raise SourceError(f"cannot push to {self.shown}: {self._said(done.stderr)}")
        raise SourceError(
            f"cannot pin {path} on {branch} of {self.shown}: the branch moved during each of "
            f"{PUSH_ATTEMPTS} attempts; try again"
        )

    def _pin_commit(
        self,
        parent: str,
        path: str,
        content: str,
        message: str,
        author: tuple[str, str],
        signing_key: Path | None,
    ) -> str:
        blob = git.write_blob(self.mirror, content.encode())
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix="pin-") as scratch:
            tree = git.tree_with_file(self.mirror, parent, path, blob, Path(scratch))
        if tree == git.tree_of(self.mirror, parent):
            return parent
        # As `git commit` does: one line break at the end of the message.
        text = message.rstrip("\n") + "\n"
        return git.commit_tree(self.mirror, tree, parent, text, author, signing_key)

    # --- parts -----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
        if self.kind == "ssh":
            env["GIT_SSH_COMMAND"] = self.ssh.command() if self.ssh else "ssh -o BatchMode=yes"
        return env

    def _refs(self) -> dict[str, str]:
        found = git.refs(self.mirror)
        return {
            **{f"refs/heads/{name}": sha for name, sha in found.branches.items()},
            **{f"refs/tags/{name}": sha for name, sha in found.tags.items()},
        }

    def _read_refs(self) -> git.Refs:
        if not (self.mirror / "HEAD").is_file():
            raise SourceError(f"{self.shown} has not been fetched yet: fetch() first")
        return git.refs(self.mirror)

    def _resolve(self, sha: str) -> str:
        if not (self.mirror / "HEAD").is_file():
            raise SourceError(f"{self.shown} has not been fetched yet: fetch() first")
        found = git.resolve(self.mirror, sha)
        if found is None:
            raise SourceError(f"{self.shown} has no commit {sha} (as of the last fetch)")
        return found

    def _said(self, stderr: str) -> str:
        return useful_line(self._clean(stderr))

    def _clean(self, text: object) -> str:
        """`text` with the source's URL shown without its credentials."""
        return str(text).replace(self.url, self.shown)


_SCHEMES: dict[str, UrlKind] = {
    "file": "file",
    "git": "git",
    "ssh": "ssh",
    "http": "http",
    "https": "https",
}
_FORMATS = {"ssh": "SSH", "openpgp": "OpenPGP (GPG)", "x509": "X.509"}
_STATUS = {
    "B": "the signature is bad (the commit changed after it was signed)",
    "X": "the signature has expired",
    "Y": "the signature was made by a key that has expired",
    "R": "the signature was made by a revoked key",
    "E": "the signature cannot be checked (the key is missing)",
    "N": "the commit is not signed",
}


def url_kind(url: str) -> UrlKind:
    """Which kind of source `url` is. Raises SourceError for a scheme git cannot fetch from
    without help (ext::, fd::...)."""
    if _HELPER.match(url):
        raise SourceError(
            f"unsupported source URL {redact(url)}: git remote helpers (<transport>::) are "
            "not accepted; use a path, file://, git://, ssh:// or https:// URL"
        )
    if "://" in url:
        scheme = _SCHEMES.get(url.split("://", 1)[0].lower())
        if scheme is not None:
            return scheme
        raise SourceError(
            f"unsupported source URL {redact(url)}: use a path, file://, git://, ssh:// or "
            "https:// URL"
        )
    if _SCP_LIKE.fullmatch(url) and not os.path.exists(url):
        return "ssh"  # git's scp-like syntax, user@host:path
    return "path"


def redact(url: str) -> str:
    """`url` as it may be shown: the password (or token) of an http(s) URL replaced."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme.startswith("http")):
        return url  # ssh://git@host: a user name, no secret
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def useful_line(stderr: str) -> str:
    """The line (or two) of git's stderr that says what went wrong: the first `fatal:` or
    `error:` line, after the line just before it when that one is the cause (ssh's
    "Permission denied", a push's "[rejected]")."""
    lines = [
        line.strip()
        for line in stderr.replace("\r", "\n").splitlines()
        if line.strip() and not line.lstrip().startswith("hint:")
    ]
    if not lines:
        return "git gave no reason"
    for index, line in enumerate(lines):
        if line.startswith(("fatal:", "error:")):
            before = lines[index - 1] if index > 0 else ""
            if before and not before.startswith(("fatal:", "error:", "warning:")):
                return f"{before} / {line}"
            return line
    return lines[-1]


def _moved_meanwhile(stderr: str) -> bool:
    return any(word in stderr for word in ("[rejected]", "non-fast-forward", "fetch first"))
