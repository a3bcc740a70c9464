"""Committing to a `target: kubernetes` environment's deploy repository: a release is a
commit of its rendered directory, a rollback a revert of release commits (docs/gitops.md).
Each change is made on a fresh look at the branch and pushed; if someone pushed meanwhile
(Flux's image automation, a person) it is made again on the new tip, a few times.

The clone lives in the server's data directory and is Conveyor's alone; what it holds
between calls does not matter (each call resets it to the branch's tip)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import GitError, SourceError
from conveyor.gitops.kube_releases import (
    DeliveryCommit,
    History,
    release_message,
    rollback_message,
    rollback_plan,
)
from conveyor.host import git_clone
from conveyor.model.deploy_repo import DeployRepo

PUSH_ATTEMPTS = 3
HISTORY_LIMIT = 500  # commits of the directory read for its release history
AUTHOR = ("Conveyor", "conveyor@conveyor.invalid")

# One git command at a time per clone: the worker delivers while the API reads history/diff.
_CLONES: dict[Path, threading.Lock] = {}
_CLONES_LOCK = threading.Lock()


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    with _CLONES_LOCK:
        lock = _CLONES.setdefault(directory.absolute(), threading.Lock())
    with lock:
        yield


@dataclass(frozen=True)
class Committed:
    """A release delivered: the deploy repository's commit holding it; `created` False when
    the branch already held exactly these files (the same source commit delivered again)."""

    commit: str
    release: int
    created: bool


@dataclass(frozen=True)
class Reverted:
    commit: str  # the revert commit
    undone: tuple[DeliveryCommit, ...]  # the release commits it reverts, newest first
    target: DeliveryCommit  # the release in force again


class DeployCheckout:
    def __init__(self, target: DeployRepo, directory: Path, environ: Mapping[str, str]) -> None:
        self.target = target
        self.directory = directory
        self.env = dict(environ)  # for git (GIT_SSH_COMMAND and the like)

    @property
    def shown(self) -> str:
        return f"{self.target.repo} ({self.target.branch})"

    def _tip(self) -> str | None:
        return git_clone.fetch_branch(
            self.target.repo, self.directory, self.target.branch, self.env
        )

    def history(self, env: str) -> History:
        """The environment's deliveries on the branch, newest first (fetched now)."""
        return self.timed_history(env)[0]

    def timed_history(self, env: str) -> tuple[History, dict[str, float]]:
        """`history`, and each commit's time (Unix seconds) on the branch."""
        try:
            with _exclusive(self.directory):
                tip = self._tip()
                if tip is None:
                    return History(()), {}
                path, limit = self.target.path, HISTORY_LIMIT
                log = git_clone.log(self.directory, tip, path, self.env, limit)
                times = git_clone.commit_times(self.directory, tip, path, self.env, limit)
        except GitError as e:
            raise SourceError(f"deploy repository {self.shown}: {e}") from None
        return History.of(env, log), times

    def pending(self, write: Callable[[Path], object]) -> str:
        """The unified diff `write(dir)` would make to the directory on the branch's tip
        (paths as in the deploy repository); "" when nothing. Nothing is committed."""
        try:
            with _exclusive(self.directory):
                tip = self._tip()
                git_clone.reset_to(self.directory, tip, self.env)
                try:
                    write(self.directory / self.target.path)
                    git_clone.stage(self.directory, self.target.path, self.env)
                    return git_clone.staged_diff(self.directory, self.target.path, self.env)
                finally:
                    git_clone.reset_to(self.directory, tip, self.env)
        except GitError as e:
            raise SourceError(f"deploy repository {self.shown}: {e}") from None

    def deliver(
        self,
        env: str,
        source: str,
        project: str,
        write: Callable[[Path], object],
        images: Mapping[str, str] | None = None,
    ) -> Committed:
        """Write the environment's directory with `write(dir)` on the branch's tip and, when
        that changes anything, commit it as the next release of `source` and push. `images`
        (service -> reference) are named in the message, so a rollback knows them again."""
        with _exclusive(self.directory):
            return self._deliver(env, source, project, write, images)

    def _deliver(
        self,
        env: str,
        source: str,
        project: str,
        write: Callable[[Path], object],
        images: Mapping[str, str] | None,
    ) -> Committed:
        for _ in range(PUSH_ATTEMPTS):
            try:
                tip = self._tip()
                git_clone.reset_to(self.directory, tip, self.env)
                log = (
                    git_clone.log(self.directory, tip, self.target.path, self.env, HISTORY_LIMIT)
                    if tip is not None
                    else []
                )
                history = History.of(env, log)
                write(self.directory / self.target.path)
                if not git_clone.stage(self.directory, self.target.path, self.env):
                    current = history.current()
                    assert tip is not None  # an empty repository always changes
                    # The same bytes: what the directory holds is this release already.
                    release = current.release if current is not None else 0
                    return Committed(commit=tip, release=release, created=False)
                number = history.next_number()
                message = release_message(env, number, source, project, images or {})
                sha = git_clone.commit_staged(self.directory, message, AUTHOR, self.env)
                pushed = git_clone.push(self.directory, sha, self.target.branch, self.env)
            except GitError as e:
                raise SourceError(f"deploy repository {self.shown}: {e}") from None
            if pushed.ok:
                return Committed(commit=sha, release=number, created=True)
            if not _moved_meanwhile(pushed.stderr):
                raise SourceError(f"cannot push to {self.shown}: {pushed.stderr.strip()}")
        raise SourceError(
            f"cannot push to {self.shown}: the branch moved during each of {PUSH_ATTEMPTS} "
            "attempts; the next pass tries again"
        )

    def revert(self, env: str, to_release: int | None, by: str) -> Reverted:
        """Revert the release commits newer than `to_release` (default: the previous
        release) in one commit, and push. Raises ValueError/LookupError when there is no
        such release, SourceError when git cannot (a later commit changed the same lines)."""
        with _exclusive(self.directory):
            return self._revert(env, to_release, by)

    def _revert(self, env: str, to_release: int | None, by: str) -> Reverted:
        for _ in range(PUSH_ATTEMPTS):
            try:
                tip = self._tip()
                if tip is None:
                    raise ValueError(f"{self.shown} has no commit: nothing was delivered")
                git_clone.reset_to(self.directory, tip, self.env)
                log = git_clone.log(self.directory, tip, self.target.path, self.env, HISTORY_LIMIT)
                undone, target = rollback_plan(History.of(env, log), to_release)
                git_clone.revert_staged(self.directory, [d.commit for d in undone], self.env)
                message = rollback_message(env, undone, target, by)
                sha = git_clone.commit_staged(self.directory, message, AUTHOR, self.env)
                pushed = git_clone.push(self.directory, sha, self.target.branch, self.env)
            except GitError as e:
                raise SourceError(f"deploy repository {self.shown}: {e}") from None
            if pushed.ok:
                return Reverted(commit=sha, undone=tuple(undone), target=target)
            if not _moved_meanwhile(pushed.stderr):
                raise SourceError(f"cannot push to {self.shown}: {pushed.stderr.strip()}")
        raise SourceError(
            f"cannot push to {self.shown}: the branch moved during each of {PUSH_ATTEMPTS} "
            "attempts; try again"
        )


def _moved_meanwhile(stderr: str) -> bool:
    said = stderr.lower()
    return "non-fast-forward" in said or "fetch first" in said or "rejected" in said
