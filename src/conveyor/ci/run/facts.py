"""What the project's checkout says, gathered through the git adapter for `conveyor.ci.select`:
`GitFacts` (HEAD, refs, origin, the commit) for the predefined variables, and the `FileFacts`
a pipeline's rules ask for (`exists`, `changes:compare_to`)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from conveyor.ci.select.facts import NULL_SHA, FileFacts, FileQuestions, GitFacts
from conveyor.errors import GitError
from conveyor.host import git


def git_facts(project_dir: Path) -> GitFacts:
    """Read HEAD, refs, the origin remote and the HEAD commit from `project_dir`. A directory
    that is not a repository (or where git cannot run) gets placeholder facts and a note."""
    try:
        if not git.is_work_tree(project_dir):
            return GitFacts(
                is_repo=False,
                notes=(
                    f"{project_dir} is not a git repository: commit variables are placeholders",
                ),
            )
        return _facts(project_dir)
    except GitError as e:
        return GitFacts(is_repo=False, notes=(f"{e}: commit variables are placeholders",))


def _facts(project_dir: Path) -> GitFacts:
    notes: list[str] = []
    sha = git.head(project_dir)
    if not sha:
        notes.append("the repository has no commit yet: CI_COMMIT_SHA is a placeholder")
    found = git.refs(project_dir)
    commit = git.commit(project_dir) if sha else None
    return GitFacts(
        is_repo=True,
        sha=sha or NULL_SHA,
        branch=git.current_branch(project_dir),
        branches=found.branches,
        tags=found.tags,
        tag_messages=found.tag_messages,
        origin_head=git.remote_head(project_dir, "origin"),
        origin_url=git.config(project_dir, "remote.origin.url"),
        user_name=git.config(project_dir, "user.name"),
        user_email=git.config(project_dir, "user.email"),
        message=commit.message if commit else "",
        author=commit.author if commit else "",
        timestamp=commit.committed_at if commit else "",
        notes=tuple(notes),
    )


def file_facts(
    project_dir: Path, questions: FileQuestions, changed: Collection[str] | None = None
) -> FileFacts:
    """The answers to what a pipeline's rules ask about files. `changed` are the pushed
    changes (None: nothing to compare, as for a new branch, a tag or a web run)."""
    return FileFacts(
        files=tuple(project_files(project_dir)) if questions.files else None,
        changed=None if changed is None else tuple(changed),
        diffs={ref: _diff(project_dir, ref) for ref in sorted(questions.compare_to)},
    )


def project_files(project_dir: Path) -> list[str]:
    """The files `rules:exists` sees: tracked and untracked-but-not-ignored files; every file
    (outside `.git`) when the directory is not a git work tree."""
    try:
        listed = git.checkout_files(project_dir)
    except GitError:
        listed = None
    if listed is not None:
        return sorted(set(listed))
    return sorted(
        path.relative_to(project_dir).as_posix()
        for path in project_dir.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project_dir).parts
    )


def _diff(project_dir: Path, ref: str) -> tuple[str, ...] | None:
    paths = git.changed_since(project_dir, ref)
    return None if paths is None else tuple(paths)
