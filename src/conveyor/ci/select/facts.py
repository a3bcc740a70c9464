"""What the repository says, as data: the input of selection and predefined variables.

The caller gathers these through the git adapter (`conveyor.ci.run.facts`); everything in
`conveyor.ci.select` only reads them, so selection and variables stay free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

NULL_SHA = "0" * 40  # GitLab's CI_COMMIT_BEFORE_SHA for a first push, MRs, schedules, web runs


@dataclass(frozen=True)
class GitFacts:
    """What the repository in a project directory says about HEAD."""

    is_repo: bool
    sha: str = NULL_SHA
    branch: str | None = None  # None: detached HEAD or not a repository
    branches: dict[str, str] = field(default_factory=dict)  # local branch -> commit
    tags: dict[str, str] = field(default_factory=dict)  # tag -> commit (annotated: peeled)
    tag_messages: dict[str, str] = field(default_factory=dict)  # annotated tags only
    origin_head: str | None = None  # the branch refs/remotes/origin/HEAD points at
    origin_url: str | None = None
    message: str = ""
    author: str = ""
    timestamp: str = ""
    user_name: str | None = None
    user_email: str | None = None
    notes: tuple[str, ...] = ()

    def at_head(self, refs: Mapping[str, str]) -> list[str]:
        return sorted(name for name, sha in refs.items() if sha == self.sha)


@dataclass(frozen=True)
class FileFacts:
    """The files `rules:exists` and `rules:changes` (and `only/except:changes`) look at.

    `files` is the project's file list (None when no rule needs it); `changed` the pushed
    changes (None when there is nothing to compare: a new branch, a tag, a web run); `diffs`
    the paths changed since each `changes:compare_to` ref (None for a ref that names no
    commit). `FileQuestions` says which of these a pipeline needs."""

    files: tuple[str, ...] | None = None
    changed: tuple[str, ...] | None = None
    diffs: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FileQuestions:
    """What selection will ask about files: the project's file list, and diffs since refs."""

    files: bool = False
    compare_to: frozenset[str] = frozenset()
