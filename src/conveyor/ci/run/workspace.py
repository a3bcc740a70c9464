"""A job's clean copy of the checkout, and the shell script a job runs.

The copy holds what `git` would: tracked files plus untracked files that `.gitignore` does not
exclude (so uncommitted work is tested, as gitlab-ci-local does), never `.git` internals of
other worktrees, never ignored build output. Files are hard-linked when possible: a job that
rewrites a file replaces it (editors and compilers write new files), so the checkout is safe,
and a copy of a large tree costs only directory entries.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from conveyor.errors import GitError
from conveyor.host import git

# Conveyor's own state (database, logs, blobs, builds, project variables with their secrets)
# lives in the project directory but is never part of a checkout GitLab would make.
STATE_PREFIX = ".conveyor/ci/"


def checkout_files(project_dir: Path) -> list[str]:
    """Relative paths a clean checkout has (tracked + untracked-not-ignored), without
    Conveyor's state directory."""
    try:
        listed = git.checkout_files(project_dir)
    except GitError:
        listed = None
    if listed is None:
        return _walk(project_dir)
    return sorted({p for p in listed if not p.startswith(STATE_PREFIX)})


def _walk(root: Path) -> list[str]:
    """Not a git checkout: everything except a `.conveyor` state directory."""
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".conveyor", ".git")]
        for f in filenames:
            files.append(str(Path(dirpath, f).relative_to(root)))
    return sorted(files)


def copy_checkout(project_dir: Path, dest: Path, files: Iterable[str] | None = None) -> int:
    """Copy the checkout into `dest` (created); returns the number of files. Copies `.git` too
    (as a real copy) so that git commands inside the job see the repository."""
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for rel in files if files is not None else checkout_files(project_dir):
        src = project_dir / rel
        dst = dest / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree but still in the index
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        elif src.is_file():
            _link_or_copy(src, dst)
        n += 1
    git_dir = project_dir / ".git"
    if git_dir.is_dir():
        # borrowed objects: git works in the job, its commits stay there (`clone --shared`)
        git.share_git_dir(git_dir, dest / ".git")
    return n


def open_to_any_user(root: Path) -> None:
    """Make every directory of a job's workspace writable by any user, as GitLab Runner's
    docker executor does (its helper runs with umask 0000): an image whose USER is not root
    can then write its results (screenshots, reports) into the checkout. Files keep their
    modes (some are hard links to the user's own files); a job replaces rather than edits
    them. The workspace lies inside the private `.conveyor/ci`, out of other users' reach."""
    for dirpath, _, _ in os.walk(root):  # symlinks are not followed
        os.chmod(dirpath, 0o777)  # noqa: S103 — see above: GitLab Runner's umask 0000


def _link_or_copy(src: Path, dst: Path) -> None:
    # A hard link would let a job's in-place append (>>) change the user's file: copy instead
    # for small files (cheap) and link only large ones, which jobs rarely edit in place.
    if src.stat().st_size < 1 << 20:
        shutil.copy2(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def render_script(
    lines: Sequence[str],
    *,
    shell: str = "bash",
    workdir: str | None = None,
    trace_prefix: str = "$ ",
) -> str:
    """The script a job's shell runs: each command echoed like GitLab's runner prints it
    (`$ cmd` in green), stopping at the first failing command (errexit + pipefail)."""
    out = ["#!/usr/bin/env " + shell if shell == "bash" else "#!/bin/sh"]
    if shell == "bash":
        out.append("set -eo pipefail")
    else:
        out.append("set -e")
        out.append("(set -o pipefail) 2>/dev/null && set -o pipefail")
    if workdir:
        out.append(f"cd {shlex.quote(workdir)}")
    for line in lines:
        shown = line.splitlines()[0] + (" # collapsed multi-line command" if "\n" in line else "")
        out.append(f"printf '\\033[32;1m%s\\033[0;m\\n' {shlex.quote(trace_prefix + shown)}")
        out.append(line)
    return "\n".join(out) + "\n"
